// One line per event on stderr, `time level component message {fields}`. Callers pass already
// redacted values; this module does not see kwargs.
const LEVELS = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 } as const;
export type LogLevel = keyof typeof LEVELS;

function threshold(): number {
  const wanted = process.env['OPSTREAM_LOG'] as LogLevel | undefined;
  return LEVELS[wanted && wanted in LEVELS ? wanted : 'info'];
}

export type Logger = Record<Exclude<LogLevel, 'silent'>, (message: string, fields?: Record<string, unknown>) => void>;

export function createLogger(component: string): Logger {
  const write = (level: Exclude<LogLevel, 'silent'>) => (message: string, fields?: Record<string, unknown>) => {
    if (LEVELS[level] < threshold()) return;
    const extra = fields ? ` ${JSON.stringify(fields)}` : '';
    process.stderr.write(`${new Date().toISOString()} ${level.padEnd(5)} ${component}: ${message}${extra}\n`);
  };
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') };
}
