/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// The visualizer page: a client of the agent's public JSON-RPC API only. It lists the fleet
// (History.list), follows it (Host.subscribe), and after a dropped connection resubscribes with
// `since` = the last sequence it saw, so nothing is missed and nothing is applied twice.
import { DetailView } from './detail-view.ts';
import { Fleet, kindOfAlert, type KindInfo, type ListedEntity } from './fleet.ts';
import { FleetView } from './fleet-view.ts';
import { el } from './format.ts';
import { RpcClient, RpcError, rpcUrl, type ConnectionState } from './rpc.ts';

const UNAVAILABLE = 105;
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

const fleet = new Fleet();
let lastSeq = 0;
let subscriptionId: string | undefined;
let subscribed: { filter: string; filterType: string } | undefined;
let wanted = { filter: 'vdsm.>', filterType: 'glob' };

const connection = $('connection');
let everOpen = false;
const setConnection = (state: ConnectionState, detail?: string) => {
  everOpen ||= state === 'open';
  // A socket that never opens is most often refused at the door: say how to pass a token.
  const hint = everOpen || new URLSearchParams(window.location.search).has('token') ? '' : ' — if the agent needs a token, open this page as /?token=…';
  connection.dataset['state'] = state;
  connection.textContent = state === 'open' ? 'live' : state === 'connecting' ? 'connecting…' : `offline${detail ? ` (${detail})` : ''}${hint}`;
  document.body.dataset['connection'] = state;
};

const rpc = new RpcClient(rpcUrl(window.location), {
  onAlert(params) {
    if (params.seq > lastSeq) lastSeq = params.seq;
    fleet.alert(params);
    if (params.alertName === detail.alertName) void detail.refresh().catch(() => undefined);
  },
  onOpen: () => catchUp(),
  onState: setConnection,
});

const detail = new DetailView($('detail'), rpc);
const fleetView = new FleetView($('fleet'), fleet, (alertName) => select(alertName));

/** After each (re)connection: kinds, the subscription (resumed from lastSeq), the listing. */
async function catchUp(): Promise<void> {
  await retryWhileRecovering(async () => {
    fleet.setKinds(await rpc.call<KindInfo[]>('Machine.list'));
    renderKinds();
    const resume = subscribed && subscribed.filter === wanted.filter && subscribed.filterType === wanted.filterType;
    if (resume) {
      try {
        const result = await rpc.call<{ subscriptionId: string; seq: number }>('Host.subscribe', { ...wanted, since: lastSeq });
        subscriptionId = result.subscriptionId;
      } catch (error) {
        // The stream no longer reaches back to lastSeq (a new stream): start over from a listing.
        if (!(error instanceof RpcError) || error.code === UNAVAILABLE) throw error;
        await startOver();
      }
    } else {
      await startOver();
    }
    if (detail.alertName) await detail.refresh();
  });
}

async function startOver(): Promise<void> {
  // Cleared first, subscribed second, listed third: an alert that lands in between reaches the
  // fleet by both ways, and the newer sequence wins entity by entity.
  fleet.clear();
  lastSeq = 0;
  const result = await rpc.call<{ subscriptionId: string; seq: number }>('Host.subscribe', wanted);
  subscriptionId = result.subscriptionId;
  subscribed = { ...wanted };
  // Only the feed moves lastSeq: it delivers in stream order, so everything up to lastSeq has
  // arrived. A listed entity's newer seq says nothing about the other entities' alerts.
  lastSeq = Math.max(lastSeq, result.seq);
  const listed = await rpc.call<ListedEntity[]>('History.list', wanted);
  for (const entry of listed) fleet.list(entry);
}

async function retryWhileRecovering(work: () => Promise<void>): Promise<void> {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await work();
    } catch (error) {
      // The agent answers Unavailable while it rebuilds its entities after a restart.
      if (!(error instanceof RpcError) || error.code !== UNAVAILABLE || attempt > 120 || !rpc.isOpen) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

async function applyFilter(): Promise<void> {
  const filter = ($('filter') as HTMLInputElement).value.trim() || 'vdsm.>';
  const filterType = ($('filter-type') as HTMLSelectElement).value;
  try {
    // The agent judges the filter (History.list compiles it as Host.subscribe does) before the
    // page lets go of what it shows: a refused filter leaves the list as it was.
    await rpc.call('History.list', { filter, filterType });
  } catch (error) {
    setFilterError((error as Error).message);
    return;
  }
  setFilterError('');
  wanted = { filter, filterType };
  if (subscriptionId) await rpc.call('Host.unsubscribe', { subscriptionId }).catch(() => undefined);
  subscriptionId = undefined;
  await startOver().catch((error: unknown) => setFilterError((error as Error).message));
}

function setFilterError(message: string): void {
  const box = $('filter-error');
  box.textContent = message;
  box.hidden = !message;
}

function renderKinds(): void {
  const tabs = $('kinds');
  const all = [{ kind: null as string | null, label: 'All', count: fleet.size }, ...fleet.kinds.map((info) => ({ kind: info.kind, label: info.kind, count: fleet.count(info.kind) }))];
  const buttons = all.map(({ kind, label, count }) => {
    const button = el('button', 'kind-tab', `${label} `);
    button.append(el('span', 'count', String(count)));
    button.setAttribute('role', 'tab');
    button.setAttribute('aria-selected', String(fleet.kindFilter === kind));
    button.dataset['kind'] = kind ?? '';
    button.addEventListener('click', () => {
      fleet.setKindFilter(kind);
      renderKinds();
    });
    return button;
  });
  tabs.replaceChildren(...buttons);
}

function select(alertName: string): void {
  const entity = fleet.get(alertName);
  fleetView.selected = alertName;
  fleet.dirty = true;
  if (window.location.hash !== `#${alertName}`) history.replaceState(null, '', `${window.location.search}#${alertName}`);
  const kind = entity?.kind ?? kindOfAlert(fleet.kinds, alertName)?.kind.kind;
  if (kind) void detail.show(alertName, kind).catch((error: unknown) => console.warn('could not show', alertName, error));
}

// One redraw per frame at most, whatever the alert rate.
let kindsShown = -1;
function frame(): void {
  if (fleet.dirty) {
    fleet.dirty = false;
    fleetView.render();
    $('fleet-count').textContent = `${fleet.view.length} of ${fleet.size}`;
    if (kindsShown !== fleet.size) {
      kindsShown = fleet.size;
      renderKinds();
    }
  }
  requestAnimationFrame(frame);
}
requestAnimationFrame(frame);

$('filter-form').addEventListener('submit', (event) => {
  event.preventDefault();
  void applyFilter();
});

const THEME_KEY = 'opstream-viz-theme';
function setTheme(theme: string): void {
  document.documentElement.dataset['theme'] = theme;
  $('theme').textContent = theme === 'dark' ? '☀ light' : '☾ dark';
  localStorage.setItem(THEME_KEY, theme);
}
setTheme(localStorage.getItem(THEME_KEY) ?? (window.matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light'));
$('theme').addEventListener('click', () => setTheme(document.documentElement.dataset['theme'] === 'dark' ? 'light' : 'dark'));

// Keyboard: / filter, f fleet, [ ] step through history, l live, v verify, t theme.
document.addEventListener('keydown', (event) => {
  const target = event.target as HTMLElement;
  if (target.closest('input, select, textarea') || event.ctrlKey || event.metaKey || event.altKey) return;
  const actions: Record<string, () => void> = {
    '/': () => $('filter').focus(),
    f: () => $('fleet').focus(),
    '[': () => detail.step(-1),
    ']': () => detail.step(1),
    l: () => detail.moveTo(undefined),
    v: () => void detail.verify(),
    t: () => $('theme').click(),
  };
  const action = actions[event.key];
  if (!action) return;
  event.preventDefault();
  action();
});

window.addEventListener('hashchange', () => {
  const named = decodeURIComponent(window.location.hash.slice(1));
  if (named && named !== detail.alertName) select(named);
});

const initial = decodeURIComponent(window.location.hash.slice(1));
if (initial) {
  const wait = setInterval(() => {
    if (!fleet.kinds.length) return;
    clearInterval(wait);
    select(initial);
  }, 50);
}
