// How alerts and OperationInfo look on a terminal: one line each, errors in red when colour is on.
import { styleText } from 'node:util';
import type { ReceivedOperationInfo } from '../domain/operation-info.ts';

const colour = (enabled: boolean, style: Parameters<typeof styleText>[0], text: string) =>
  enabled ? styleText(style, text) : text;

export function formatOperationInfo(info: ReceivedOperationInfo, useColour = process.stdout.isTTY ?? false): string {
  const parts = [info.operationDescription];
  if (info.stageDescription) parts.push(info.stageDescription);
  if (info.stage[1] > 1) parts.push(`stage ${info.stage[0]}/${info.stage[1]}`);
  if (info.percentage >= 0) parts.push(`${info.percentage}%`);
  const state = info.extraData['state'];
  if (typeof state === 'string') parts.push(`(${state})`);
  const [code, message] = info.lastError;
  const line = parts.join(' · ');
  return code === 0 ? line : `${line} ${colour(useColour, 'red', `error ${code}: ${message}`)}`;
}

export function formatAlertLine(alertName: string, seq: number, info: ReceivedOperationInfo, useColour?: boolean): string {
  return `${String(seq).padStart(6)}  ${alertName.padEnd(32)} ${formatOperationInfo(info, useColour)}`;
}
