// The layering, checked in CI (`npm run depcruise`): every import points down this list, never up.
// README "Layers" says the same in prose; change both together.
//
//   src/domain, src/filters   vocabulary: names, schemas, errors, filters (zod only)
//   src/log                   the logger
//   src/security              credentials and history seals (node:crypto, nkeys)
//   src/nats                  the bus: connections, the alert stream, the nats-server binary
//   src/subscriptions         reading the alert stream for one filter
//   src/fleet                 host leases and calls forwarded between agents
//   machines/                 pure XState machines                 → domain
//   actors/                   the runtime: effects and persistence → machines, domain, security, nats, log
//   src/client, src/manager,  the client library (what `opstream` exports): no runtime, no API,
//   src/index.ts              no machines                          → domain, security, nats, subscriptions, log
//   src/api, src/replay,      the agent's faces: the API, the replay debugger and the visualizer
//   src/viz, src/jobs         page it serves, the job views → actors and below
//   src/agent.ts, src/cli     the process and its commands         → anything above

const LOWER = {
  domain: '^src/(domain|filters)/',
  log: '^src/log[.]ts$',
  security: '^src/security/',
  nats: '^src/nats/',
  subscriptions: '^src/subscriptions/',
  fleet: '^src/fleet/',
  machines: '^machines/',
  actors: '^actors/',
  client: '^src/(client|manager)/|^src/index[.]ts$',
  server: '^src/(api|replay|viz|jobs)/',
};
/** Everything that is code of the package (as opposed to tests, benches and scripts). */
const PACKAGE = '^(src|actors|machines)/';
const only = (...layers) => layers.map((layer) => LOWER[layer]).join('|');

/** One rule per layer: what it may import from the package, nothing else. */
const layer = (name, from, ...allowed) => ({
  name,
  severity: 'error',
  comment: `${from} may import only ${allowed.join(', ') || 'itself'} from the package`,
  from: { path: from },
  to: { path: PACKAGE, pathNot: [from, only(...allowed)].filter(Boolean).join('|') },
});

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    layer('domain-is-vocabulary', LOWER.domain, 'domain'),
    layer('log-stands-alone', LOWER.log),
    layer('security-stands-alone', LOWER.security),
    layer('nats-is-infrastructure', LOWER.nats, 'domain', 'log', 'security'),
    layer('subscriptions-read-the-stream', LOWER.subscriptions, 'domain', 'log', 'security', 'nats'),
    layer('fleet-is-infrastructure', LOWER.fleet, 'domain', 'log', 'nats'),
    layer('machines-are-pure', LOWER.machines, 'domain'),
    layer('actors-run-machines', LOWER.actors, 'machines', 'domain', 'log', 'security', 'nats'),
    layer('client-stays-light', LOWER.client, 'domain', 'log', 'security', 'nats', 'subscriptions'),
    layer('server-faces-use-the-runtime', LOWER.server, 'actors', 'machines', 'domain', 'log', 'security', 'nats', 'subscriptions', 'fleet'),
    layer('agent-assembles', '^src/agent[.]ts$', 'server', 'actors', 'machines', 'domain', 'log', 'security', 'nats', 'subscriptions', 'fleet'),
    {
      name: 'client-entry-loads-no-server',
      severity: 'error',
      comment: "`import 'opstream'` must not load the API, the runtime, the machines or a driver",
      from: { path: '^src/index[.]ts$' },
      to: { path: '^(actors|machines)/|^src/(api|cli|replay)/|^src/agent[.]ts$', reachable: true },
    },
    {
      name: 'package-code-stays-in-the-package',
      severity: 'error',
      comment: 'the package ships dist/ only: its code cannot import scripts, tests or benches',
      from: { path: PACKAGE },
      to: { path: '^(scripts|test|bench|bin)/' },
    },
    {
      name: 'no-dev-dependencies-at-runtime',
      severity: 'error',
      comment: 'an installed package has no devDependencies',
      from: { path: PACKAGE },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'a cycle of type-only imports loads nothing at run time, so only value imports count',
      from: {},
      to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
  },
};
