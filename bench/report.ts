export type Figure = { name: string; value: number; unit: string; detail?: string };

export function rate(name: string, count: number, seconds: number): Figure {
  return { name, value: count / seconds, unit: '/s', detail: `${count} in ${seconds.toFixed(2)} s` };
}

export function report(title: string, figures: Figure[]): void {
  console.log(`\n${title}`);
  for (const { name, value, unit, detail } of figures) {
    const shown = ['×', 's', 'ms', 'msgs'].includes(unit) ? value.toFixed(2) : Math.round(value).toLocaleString('en-US');
    console.log(`  ${name.padEnd(58)} ${shown.padStart(10)} ${unit}${detail ? `   (${detail})` : ''}`);
  }
}
