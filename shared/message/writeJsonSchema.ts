// Regenerates mail-message.v1.schema.json (npm run schema); a test fails when the file is out of date.
import { writeFileSync } from 'node:fs';
import { mailMessageJsonSchema } from './jsonSchema';

const path = new URL('./mail-message.v1.schema.json', import.meta.url);
writeFileSync(path, `${JSON.stringify(mailMessageJsonSchema(), null, 2)}\n`);
console.log(`wrote ${path.pathname.split('/').slice(-3).join('/')}`);
