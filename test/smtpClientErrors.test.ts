/**
 * Every kind of error nodemailer's SMTP client raises, in the shape it raises it (`code`, `command`, `response`,
 * `responseCode`, `originalCode`), and the class each one gets: what happens to the message and to the account.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classifySmtpFailure, type SmtpFailure } from '../shared/smtp/classifyReply';

const reply = (response: string): Pick<SmtpFailure, 'response' | 'responseCode'> => ({
  response,
  responseCode: Number(response.slice(0, 3)),
});

const CASES: Array<[string, SmtpFailure, string]> = [
  // STARTTLS and TLS
  [
    'STARTTLS not offered (500)',
    { code: 'ETLS', command: 'STARTTLS', ...reply('500 5.5.1 command not recognized') },
    'account:config_error',
  ],
  [
    'STARTTLS not implemented (502)',
    { code: 'ETLS', command: 'STARTTLS', ...reply('502 5.5.1 Command not implemented') },
    'account:config_error',
  ],
  [
    'STARTTLS refused for now (454)',
    { code: 'ETLS', command: 'STARTTLS', ...reply('454 4.7.0 TLS not available due to temporary reason') },
    'throttled',
  ],
  [
    'self-signed certificate after STARTTLS',
    { code: 'ETLS', command: 'STARTTLS', message: 'Error initiating TLS - self-signed certificate' },
    'account:config_error',
  ],
  [
    'certificate for another host',
    {
      code: 'ETLS',
      command: 'CONN',
      message:
        "Error initiating TLS - Hostname/IP does not match certificate's altnames: IP: 127.0.0.2 is not in the cert's list",
    },
    'account:config_error',
  ],
  [
    'expired certificate (implicit TLS)',
    { code: 'ESOCKET', command: 'CONN', originalCode: 'CERT_HAS_EXPIRED', message: 'certificate has expired' },
    'account:config_error',
  ],
  [
    'TLS to a plaintext port',
    { code: 'ETLS', command: 'CONN', message: 'Error initiating TLS - SSL routines:ssl3_get_record:wrong version number' },
    'account:config_error',
  ],
  [
    'connection closed during the TLS handshake',
    { code: 'ETLS', command: 'CONN', message: 'Connection closed unexpectedly' },
    'transient',
  ],
  // AUTH
  [
    'XOAUTH2 not offered (our login)',
    { code: 'EAUTH', command: 'AUTH XOAUTH2', offeredAuth: ['PLAIN', 'LOGIN'], message: 'no XOAUTH2' },
    'account:config_error',
  ],
  [
    'no AUTH offered at all (our login)',
    { code: 'EAUTH', command: 'AUTH XOAUTH2', offeredAuth: [], message: 'no XOAUTH2' },
    'account:config_error',
  ],
  [
    '504 mechanism unrecognized',
    { code: 'EAUTH', command: 'AUTH XOAUTH2', ...reply('504 5.7.4 Unrecognized authentication type') },
    'account:config_error',
  ],
  [
    '500 AUTH unrecognized',
    { code: 'EAUTH', command: 'AUTH XOAUTH2', ...reply('500 5.5.1 command not recognized') },
    'account:config_error',
  ],
  [
    '530 5.7.0 STARTTLS first: a session in clear text, not a refused token',
    { code: 'EAUTH', command: 'AUTH XOAUTH2', ...reply('530 5.7.0 Must issue a STARTTLS command first') },
    'account:config_error',
  ],
  [
    '530 5.7.0 authentication required: still a token matter',
    { code: 'EAUTH', command: 'AUTH XOAUTH2', ...reply('530 5.7.0 Authentication required') },
    'auth_rejected',
  ],
  [
    '535 5.7.3 token refused',
    { code: 'EAUTH', command: 'AUTH XOAUTH2', ...reply('535 5.7.3 Authentication unsuccessful') },
    'auth_rejected',
  ],
  [
    '535 5.7.8 Gmail bad credentials',
    { code: 'EAUTH', command: 'AUTH XOAUTH2', ...reply('535-5.7.8 Username and Password not accepted.') },
    'auth_rejected',
  ],
  [
    '535 5.7.139 SMTP AUTH disabled',
    {
      code: 'EAUTH',
      command: 'AUTH XOAUTH2',
      ...reply('535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled'),
    },
    'account:smtp_auth_disabled',
  ],
  [
    '501 5.5.127 token about to expire',
    { code: 'EAUTH', command: 'AUTH XOAUTH2', ...reply('501 5.5.127 Invalid XOAUTH2 auth data - Token will expire soon') },
    'auth_rejected',
  ],
  [
    '454 4.7.0 too many logins',
    { code: 'EAUTH', command: 'AUTH XOAUTH2', ...reply('454 4.7.0 Too many login attempts, please try again later.') },
    'throttled',
  ],
  [
    '451 temporary AUTH failure',
    { code: 'EAUTH', command: 'AUTH XOAUTH2', ...reply('451 4.3.0 Temporary server error') },
    'transient',
  ],
  ['EAUTH without a reply', { code: 'EAUTH', command: 'AUTH XOAUTH2', message: 'Connection closed' }, 'transient'],
  // Greeting and EHLO
  ['554 greeting', { code: 'EPROTOCOL', command: 'CONN', ...reply('554 5.7.1 No SMTP service here') }, 'account:config_error'],
  ['421 greeting', { code: 'EPROTOCOL', command: 'CONN', ...reply('421 4.3.2 Service not available') }, 'throttled'],
  [
    'EHLO refused with requireTLS',
    { code: 'ECONNECTION', command: 'EHLO', ...reply('550 5.7.1 Client host rejected') },
    'account:config_error',
  ],
  ['greeting timeout', { code: 'ETIMEDOUT', command: 'CONN', message: 'Greeting never received' }, 'transient'],
  ['connection timeout', { code: 'ETIMEDOUT', command: 'CONN', message: 'Connection timeout' }, 'transient'],
  // Connection trouble
  [
    'connection refused',
    { code: 'ESOCKET', command: 'CONN', originalCode: 'ECONNREFUSED', message: 'connect ECONNREFUSED 127.0.0.1:1' },
    'transient',
  ],
  ['connection reset', { code: 'ESOCKET', command: 'CONN', originalCode: 'ECONNRESET', message: 'read ECONNRESET' }, 'transient'],
  ['closed unexpectedly', { code: 'ECONNECTION', command: 'CONN', message: 'Connection closed unexpectedly' }, 'transient'],
  // A DNS failure may be a typo or a passing outage; a wrong host gives up after maxAttempts with the reason.
  [
    'host not found',
    { code: 'EDNS', command: 'CONN', originalCode: 'ENOTFOUND', message: 'getaddrinfo ENOTFOUND smtp.example.invalid' },
    'transient',
  ],
  [
    'DNS try again',
    { code: 'EDNS', command: 'CONN', originalCode: 'EAI_AGAIN', message: 'getaddrinfo EAI_AGAIN smtp.office365.com' },
    'transient',
  ],
  // The message itself
  [
    '550 5.1.1 on RCPT',
    { code: 'EENVELOPE', command: 'RCPT TO', ...reply('550 5.1.1 User unknown') },
    'permanent:recipient_rejected',
  ],
  [
    '552 on DATA',
    { code: 'EMESSAGE', command: 'DATA', ...reply('552 5.3.4 Message size exceeds fixed maximum message size') },
    'permanent:too_large',
  ],
  [
    'no reply after the data',
    { code: 'ETIMEDOUT', command: 'CONN', afterData: true, message: 'Timeout' },
    'permanent:delivery_unconfirmed',
  ],
];

for (const [name, error, expected] of CASES) {
  test(`${name} → ${expected}`, () => {
    const result = classifySmtpFailure(error);
    const got = result.kind === 'permanent' || result.kind === 'account' ? `${result.kind}:${result.code}` : result.kind;
    assert.equal(got, expected, result.reason);
  });
}

test('the reasons say what the admin must know: the token was not sent, and what the server offered', () => {
  const starttls = classifySmtpFailure({ code: 'ETLS', command: 'STARTTLS', ...reply('500 5.5.1 command not recognized') });
  assert.match(starttls.reason, /did not offer STARTTLS/);
  assert.match(starttls.reason, /token was not sent/);
  assert.match(starttls.reason, /500 5\.5\.1 command not recognized/);
  const xoauth2 = classifySmtpFailure({ code: 'EAUTH', command: 'AUTH XOAUTH2', offeredAuth: ['PLAIN', 'LOGIN'] });
  assert.match(xoauth2.reason, /does not offer AUTH XOAUTH2 \(it offers PLAIN, LOGIN\)/);
  assert.match(xoauth2.reason, /token was not sent/);
  const cert = classifySmtpFailure({
    code: 'ETLS',
    command: 'STARTTLS',
    message: 'Error initiating TLS - self-signed certificate',
  });
  assert.match(cert.reason, /certificate is not trusted/);
  assert.match(cert.reason, /token was not sent/);
});
