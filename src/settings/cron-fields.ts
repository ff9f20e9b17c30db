/**
 * Names what is wrong with each field of a 5-field cron expression, in the terms a crontab user knows, before the
 * cron package parses it: its own messages ("Field value (61) is out of range") say neither which field nor what
 * range. Only range and spelling are checked here; the cron package stays the judge of everything else.
 */
interface CronField {
  name: string;
  min: number;
  max: number;
  /** Three-letter names, in order from `min`. */
  names?: readonly string[];
}

const FIELDS: readonly CronField[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day-of-month', min: 1, max: 31 },
  {
    name: 'month',
    min: 1,
    max: 12,
    names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'],
  },
  // 0 and 7 are both Sunday, as in crontab(5).
  { name: 'day-of-week', min: 0, max: 7, names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] },
];

/** Every problem found, one per field at most, e.g. `minute must be 0-59 (got 61)`; empty when none. */
export function cronFieldProblems(fields: readonly string[]): string[] {
  return FIELDS.flatMap((field, index) => {
    const problem = fieldProblem(field, fields[index] ?? '');
    return problem === undefined ? [] : [problem];
  });
}

function fieldProblem(field: CronField, text: string): string | undefined {
  const allowed = `${field.min}-${field.max}${field.names ? ` or ${field.names[0]}-${field.names.at(-1)}` : ''}`;
  for (const item of text.split(',')) {
    const [base, step, ...rest] = item.split('/');
    if (rest.length > 0 || (step !== undefined && !/^[1-9][0-9]{0,3}$/.test(step))) {
      return `${field.name} step must be a whole number from 1 (got "${item}")`;
    }
    if (base === '*') {
      continue;
    }
    const ends = base.split('-');
    if (ends.length > 2) {
      return `${field.name} must be ${allowed} (got ${JSON.stringify(base)})`;
    }
    const values: number[] = [];
    for (const end of ends) {
      const value = valueOf(field, end);
      if (value === undefined) {
        return `${field.name} must be ${allowed} (got ${/^[0-9]+$/.test(end) ? end : JSON.stringify(end)})`;
      }
      values.push(value);
    }
    if (values.length === 2 && values[0] > values[1]) {
      return `${field.name} range must run from low to high (got ${base})`;
    }
  }
  return undefined;
}

function valueOf(field: CronField, text: string): number | undefined {
  if (/^[0-9]+$/.test(text)) {
    const value = Number(text);
    return value >= field.min && value <= field.max ? value : undefined;
  }
  const index = field.names?.indexOf(text.toLowerCase()) ?? -1;
  return index >= 0 ? field.min + index : undefined;
}
