/**
 * SMTP replies as Exchange Online (smtp.office365.com) and Gmail (smtp.gmail.com) really send them,
 * collected from public bug reports, provider documentation and captured sessions. Host names,
 * timestamps and session ids inside the texts are the ones from those captures; only their shape matters.
 *
 * Use them with the scripted server (`{ reply: PROVIDER_REPLIES.exchangeSenderThreadLimit }`) or the
 * budget sink, so the classification code under test meets the exact wording it will meet in production.
 */

/** Where in an SMTP session a reply is given. `dataStart` answers the DATA command, `data` the message body. */
export type SmtpStage = 'connect' | 'ehlo' | 'starttls' | 'auth' | 'mail' | 'rcpt' | 'dataStart' | 'data';

export interface SmtpReply {
  readonly code: number;
  /** RFC 3463 enhanced status code, repeated on every line; absent for greetings and 3xx replies. */
  readonly enhanced?: string;
  /** One entry per reply line. A leading space is significant (Gmail puts two spaces before its URLs). */
  readonly lines: readonly string[];
}

export interface ProviderReply extends SmtpReply {
  readonly provider: 'exchange-online' | 'gmail';
  /** The stage at which the provider gives this reply. */
  readonly stage: SmtpStage;
  /** Where the exact text was seen: repository#issue, or the title of the provider's documentation page. */
  readonly source: string;
}

/** The challenge Gmail sends after a rejected XOAUTH2 token: base64 of the JSON error below. */
export const GMAIL_XOAUTH2_ERROR = { status: '400', schemes: 'Bearer', scope: 'https://mail.google.com/' } as const;
export const GMAIL_XOAUTH2_CHALLENGE = Buffer.from(JSON.stringify(GMAIL_XOAUTH2_ERROR)).toString('base64');

const exchange = (
  stage: SmtpStage,
  code: number,
  enhanced: string | undefined,
  lines: readonly string[],
  source: string,
): ProviderReply => ({ provider: 'exchange-online', stage, code, enhanced, lines, source });

const gmail = (
  stage: SmtpStage,
  code: number,
  enhanced: string | undefined,
  lines: readonly string[],
  source: string,
): ProviderReply => ({ provider: 'gmail', stage, code, enhanced, lines, source });

export const PROVIDER_REPLIES = {
  // ---- Exchange Online ----------------------------------------------------------------------------
  exchangeGreeting: exchange(
    'connect',
    220,
    undefined,
    [
      'LO4P302CA0005.outlook.office365.com Microsoft ESMTP MAIL Service ready at Thu, 10 Oct 2024 22:49:55 +0000 [08DCE8B62813AB2B]',
    ],
    'simonrob/email-oauth2-proxy#297',
  ),
  exchangeAccepted: exchange(
    'data',
    250,
    '2.0.0',
    ['OK <b225fdda-3db5-4aeb-4d52-c74d71838980@sunshinesmallgoods.com.au> [Hostname=SYBP282MB2635.AUSP282.PROD.OUTLOOK.COM]'],
    'nodemailer sendMail() result captured against smtp.office365.com (code search: "250 2.0.0 OK <")',
  ),
  /** Front end going away (maintenance, failover); seen relayed as `451 4.4.395 ... -> 421 4.3.2 Service not available`. */
  exchangeServiceNotAvailable: exchange(
    'connect',
    421,
    '4.3.2',
    ['Service not available'],
    'Microsoft Q&A "Exchange 2019 - Periodic Email Delivery Issues in DAG"',
  ),
  /** More than three connections of one mailbox submitting at once. The docs quote it with a trailing period only. */
  exchangeConcurrentConnections: exchange(
    'data',
    432,
    '4.3.2',
    [
      'Concurrent connections limit exceeded. Visit https://aka.ms/concurrent_sending for more information. [Hostname=OS0PR01MB6099.jpnprd01.prod.outlook.com]',
    ],
    'sabuhish/fastapi-mail#75; doc "Message storage and concurrent connection throttling for SMTP Authenticated Submission"',
  ),
  /** The older wording of the same throttle, answered to the end of DATA ("Message failed"). */
  exchangeSenderThreadLimit: exchange(
    'data',
    432,
    '4.3.2',
    ['STOREDRV.ClientSubmit; sender thread limit exceeded [Hostname=DM5SPR00MB2471.namprd08.prod.outlook.com]'],
    'timeoff-management/timeoff-management-application#308; v2board/v2board#148',
  ),
  /** Transient failure of the submission front end, answered to the end of DATA. */
  exchangeTemporaryServerError: exchange(
    'data',
    451,
    '4.3.111',
    ['Temporary server error. Please try again later MRH1 [Hostname=GVXP192MB1782.EURP192.PROD.OUTLOOK.COM]'],
    'datalust/seq-app-htmlemail#101',
  ),
  /** Transient failure while authenticating. */
  exchangeTemporaryAuthError: exchange(
    'auth',
    451,
    '4.7.0',
    ['Temporary server error. Please try again later. PRX4 [AM5PR0701CA0008.eurprd07.prod.outlook.com]'],
    'jstedfast/MailKit#566',
  ),
  /**
   * Exchange Online Protection (the inbound MX, not smtp.office365.com) deferring at RCPT. Listed because
   * relays and hybrid set-ups surface it; a submission client should treat it as transient.
   */
  exchangeServerBusy: exchange(
    'rcpt',
    451,
    '4.7.500',
    ['Server busy. Please try again later from [203.0.113.7]. (S77719)'],
    'MicrosoftDocs/OfficeDocs-Exchange#2499; ActiveCampaign/smtp-field-manual#22',
  ),
  /** Wrong or foreign token, or a token without the SMTP.Send permission: no 334 challenge, straight 535. */
  exchangeAuthUnsuccessful: exchange(
    'auth',
    535,
    '5.7.3',
    ['Authentication unsuccessful [AM0PR06CA0126.eurprd06.prod.outlook.com 2024-02-14T14:50:26.590Z 08DC2D372B4C3DED]'],
    'jstedfast/MailKit#1712; tarickb/sasl-xoauth2#43',
  ),
  exchangeSmtpAuthDisabled: exchange(
    'auth',
    535,
    '5.7.139',
    [
      'Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. [MN2PR05CA0004.namprd05.prod.outlook.com 2023-09-12T20:59:57.214Z 08DBB276B7E699C4]',
    ],
    'simonrob/email-oauth2-proxy#193; nodemailer/nodemailer#1484',
  ),
  /** What a password (basic auth) login gets now; an OAuth client should never see it. */
  exchangeBasicAuthDisabled: exchange(
    'auth',
    535,
    '5.7.139',
    [
      'Authentication unsuccessful, basic authentication is disabled. [PN0PR01CA0024.INDPRD01.PROD.OUTLOOK.COM 2025-01-26T18:54:30.055Z 08DD3DD7D75D7743]',
    ],
    'nodemailer/nodemailer#1714',
  ),
  /** Seen on smtp-hve.office365.com when the token expires within a few minutes; refresh and retry. */
  exchangeTokenExpiresSoon: exchange(
    'auth',
    501,
    '5.5.127',
    ['Invalid XOAUTH2 auth data - Token will expire soon'],
    'tarickb/sasl-xoauth2#98',
  ),
  exchangeUnrecognizedAuth: exchange(
    'auth',
    504,
    '5.7.4',
    ['Unrecognized authentication type'],
    'code search: Exchange SMTP transcripts answering AUTH LOGIN/CRAM-MD5',
  ),
  /** MAIL FROM on a session that did not authenticate (for example after a failed AUTH). */
  exchangeNotAuthenticated: exchange(
    'mail',
    530,
    '5.7.57',
    ['Client not authenticated to send mail.'],
    'MicrosoftDocs/OfficeDocs-Exchange#3124',
  ),
  /** From address the mailbox may not use, older wording; answered to the end of DATA. */
  exchangeSendAsPermission: exchange(
    'data',
    550,
    '5.7.60',
    ['SMTP; Client does not have permissions to send as this sender [MW2PR1901MB2155.namprd19.prod.outlook.com]'],
    'swiftmailer/swiftmailer#1030; WWBN/AVideo#1017',
  ),
  /** From address the mailbox may not use, current wording (the diagnostic blob is cut short here). */
  exchangeSendAsDenied: exchange(
    'data',
    554,
    '5.2.252',
    [
      'SendAsDenied; delightgx46@outlook.com not allowed to send as security@sfb.com; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process message due to a permanent exception with message [BeginDiagnosticData]Cannot submit message. 0.35250:1F009983, 1.36674:0A000000',
    ],
    'gophish/gophish#2900',
  ),
  exchangeSendAsDeniedLegacy: exchange(
    'data',
    554,
    '5.2.0',
    [
      'STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process message due to a permanent exception with message Cannot submit message.',
    ],
    'MicrosoftDocs/OfficeDocs-Support#1187',
  ),
  /** The 10,000 recipients per day limit. The 30 messages per minute limit only delays, it is not answered. */
  exchangeSubmissionQuota: exchange(
    'data',
    554,
    '5.2.0',
    ['STOREDRV.Submission.Exception:SubmissionQuotaExceededException'],
    'doc "Message storage and concurrent connection throttling for SMTP Authenticated Submission"; MicrosoftDocs/OfficeDocs-Support#1150',
  ),
  /** The sending mailbox is full (sent items count against it). */
  exchangeMailboxFull: exchange(
    'data',
    554,
    '5.2.2',
    ['mailbox full; STOREDRV.Submission.Exception:QuotaExceededException.MapiExceptionQuotaExceeded'],
    'doc "Message storage and concurrent connection throttling for SMTP Authenticated Submission"',
  ),
  /**
   * Unknown recipient. Exchange Online accepts the submission and bounces later, so this text normally
   * arrives in the NDR's Diagnostic-Code; a relay may still return it at RCPT.
   */
  exchangeRecipientNotFound: exchange(
    'rcpt',
    550,
    '5.1.1',
    ['RESOLVER.ADR.RecipNotFound; not found'],
    'doc "Fix email delivery issues for error code 550 5.1.1 through 5.1.20 in Exchange Online" (MicrosoftDocs/OfficeDocs-Exchange#2403)',
  ),

  // ---- Gmail --------------------------------------------------------------------------------------
  gmailGreeting: gmail(
    'connect',
    220,
    undefined,
    ['smtp.gmail.com ESMTP o8sm3958210pjs.6 - gsmtp'],
    'vert-x3/vertx-mail-client MailAuthChainTest',
  ),
  gmailAccepted: gmail(
    'data',
    250,
    '2.0.0',
    ['OK  1642091984 z24sm9037572pjq.17 - gsmtp'],
    'nodemailer sendMail() results captured against smtp.gmail.com (code search: "250 2.0.0 OK  1")',
  ),
  /** Given to EHLO (and at other stages) when Google sheds load or dislikes the HELO name; closes the connection. */
  gmailTryAgainLater: gmail(
    'ehlo',
    421,
    '4.7.0',
    ['Try again later, closing connection. (EHLO) v6-20020a50c406000000b00461d375b0a5sm78344edf.43 - gsmtp'],
    'calcom/cal.diy#5254; dawidd6/action-send-mail#196',
  ),
  /**
   * The answer after the 334 challenge that follows a rejected XOAUTH2 token
   * (`334 <GMAIL_XOAUTH2_CHALLENGE>`, client sends an empty line, then this).
   */
  gmailBadCredentials: gmail(
    'auth',
    535,
    '5.7.8',
    [
      'Username and Password not accepted. Learn more at',
      ' https://support.google.com/mail/?p=BadCredentials o8sm3958210pjs.6 - gsmtp',
    ],
    'vert-x3/vertx-mail-client MailAuthChainTest; dawidd6/action-send-mail#82',
  ),
  gmailTooManyLogins: gmail(
    'auth',
    454,
    '4.7.0',
    ['Too many login attempts, please try again later. ca2sm424696pbc.68 - gsmtp'],
    'code search: nodemailer EAUTH responses from smtp.gmail.com',
  ),
  gmailStartTlsFirst: gmail(
    'mail',
    530,
    '5.7.0',
    ['Must issue a STARTTLS command first. q19sm2934692qbq - gsmtp'],
    'code search: "530 5.7.0 Must issue a STARTTLS command first"',
  ),
  /** Recipient's inbox (the MX side) rate limit, given at RCPT; transient. */
  gmailReceivingRate: gmail(
    'rcpt',
    450,
    '4.2.1',
    [
      'The user you are trying to contact is receiving mail at a rate that',
      'prevents additional messages from being delivered. Please resend your',
      'message at a later time. If the user is able to receive mail at that',
      'time, your message will be delivered. For more information, please',
      'visit',
      ' https://support.google.com/mail/?p=ReceivingRate aabb1122ccddeeff.547 - gsmtp',
    ],
    'Plesk KB "Emails to Gmail are not delivered: The user you are trying to contact is receiving mail at a rate ..."',
  ),
  /** The account's daily sending limit; Python clients see it as SMTPDataError, so at the end of DATA. */
  gmailDailyLimit: gmail(
    'data',
    550,
    '5.4.5',
    [
      'Daily user sending limit exceeded. For more information on Gmail',
      'sending limits go to',
      ' https://support.google.com/a/answer/166852 d75a77b69052e-4535f85b3d9sm7257481cf.29 - gsmtp',
    ],
    'onepub-dev/onepub#543; woowacourse-teams/2025-ah-madda#635',
  ),
  /** Older wording of the daily limit. */
  gmailDailyQuotaLegacy: gmail(
    'data',
    550,
    '5.4.5',
    ['Daily user sending quota exceeded. o65sm25351206pga.71 - gsmtp'],
    'gen-smtp/gen_smtp#140; iiuni/projektzapisy#960',
  ),
  gmailTooManyRecipients: gmail(
    'rcpt',
    452,
    '4.5.3',
    [
      "Your message has too many recipients. For more information regarding Google's sending limits, visit https://support.google.com/mail/answer/22839 a1sm1234567wmq.1 - gsmtp",
    ],
    'emersion/go-smtp#195 (quoting Google\'s "SMTP errors and codes")',
  ),
} as const satisfies Record<string, ProviderReply>;

export type ProviderReplyName = keyof typeof PROVIDER_REPLIES;

/** The reply as it goes on the wire, lines joined with `eol` and no trailing line break. */
export function formatReply(reply: SmtpReply, eol = '\r\n'): string {
  const lines = reply.lines.length > 0 ? reply.lines : [''];
  const enhanced = reply.enhanced ? `${reply.enhanced} ` : '';
  return lines.map((line, i) => `${reply.code}${i < lines.length - 1 ? '-' : ' '}${enhanced}${line}`).join(eol);
}

/** A reply of the same shape with other text, e.g. to put a real queue id into an accepted-reply template. */
export function withText(reply: SmtpReply, ...lines: string[]): SmtpReply {
  return { code: reply.code, enhanced: reply.enhanced, lines };
}
