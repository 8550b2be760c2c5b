/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// Small helpers the views share: element creation and how OperationInfo reads to a person.
import type { OperationInfo } from './rpc.ts';

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, className?: string, text?: string): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined) element.textContent = text;
  return element;
}

/** "2/3 · 45% · powering up" while an operation runs; undefined when settled ([n, n]). */
export function describeProgress(info: OperationInfo): { text: string; fraction?: number } | undefined {
  const [stage, total] = info.stage;
  if (stage >= total) return undefined;
  const parts = [`${stage}/${total}`];
  if (info.percentage >= 0) parts.push(`${info.percentage}%`);
  if (info.stageDescription) parts.push(info.stageDescription);
  return { text: parts.join(' · '), ...(info.percentage >= 0 ? { fraction: info.percentage / 100 } : {}) };
}

/** "123 Error writing to disks", or undefined for [0, ""]. */
export function errorText(info: OperationInfo): string | undefined {
  const [code, message] = info.lastError;
  return code === 0 ? undefined : `${code} ${message}`;
}

/** A state value as a path: `Up`, `MigrationSource.copyingMemory`. */
export function showState(value: unknown): string {
  if (value === null || value === undefined) return '∅';
  if (typeof value === 'string') return value;
  return Object.entries(value as Record<string, unknown>)
    .map(([key, inner]) => `${key}.${showState(inner)}`)
    .join(', ');
}

/** extraData in one short line: `state: paused`, `imageState: optimized`. */
export function describeExtra(extraData: Record<string, unknown>): string {
  return Object.entries(extraData)
    .filter(([, value]) => value !== null && typeof value !== 'object')
    .slice(0, 3)
    .map(([key, value]) => `${key}: ${String(value)}`)
    .join(' · ');
}
