// The bundle's entry point: importing a function file registers it with the Functions host.
import './health';
import './sendMail';
import './refreshTokens';
import './authorize';
import './oauthCallback';
import './admin';
import './statusRedirect';
import './accountList';
import './accountDetail';
import './accountTest';
import './messages';
import './accountCreate';
import './accountUpdate';
import './accountDelete';
