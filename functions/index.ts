// The bundle's entry point: importing a function file registers it with the Functions host.
import './health';
import './sendMail';
import './refreshTokens';
