// Rows 14c-14d from Node: a Search hit (@grpc/grpc-js) beside the same QIDO-RS GET
// straight to the archive (Node's fetch), call by call in rotated order; each side
// ends with the parsed JSON array, as a Node service would use it.
//
//   node benchmarks/node/search_hits.js TARGET UPSTREAM ARCHIVE_URL ROUNDS QIDO...
//
// Prints {"<qido>": {"search": [s...], "direct": [s...], "misses": n, "equal": bool}}:
// seconds per call; misses counts timed Search calls that were not hits (must be 0);
// equal says whether the answers matched the archive's (parsed JSON, order included).
"use strict";

const path = require("path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const protos = path.resolve(__dirname, "..", "..", "protos");
const definition = protoLoader.loadSync("dicomcache/v1/cache_service.proto", {
  includeDirs: [protos], keepCase: true, enums: String, defaults: true,
});
const { CacheService } = grpc.loadPackageDefinition(definition).dicomcache.v1;
const LEVELS = { studies: "SEARCH_LEVEL_STUDIES", series: "SEARCH_LEVEL_SERIES",
                 instances: "SEARCH_LEVEL_INSTANCES" };
const WARMUP = 5;

function request(upstream, qido) {
  const url = new URL(qido, "qido:/");
  const parts = url.pathname.split("/");
  const match = [...url.searchParams].map(([name, value]) => ({ name, values: [value] }));
  return { upstream, level: LEVELS[parts[parts.length - 1]], study_uid: parts[2] || "",
           series_uid: parts[4] || "", match };
}

function search(client, message) {
  return new Promise((resolve, reject) => {
    client.Search(message, { deadline: Date.now() + 10000 }, (error, response) =>
      error ? reject(error) : resolve({ hit: response.hit, json: JSON.parse(response.dicom_json) }));
  });
}

// The JSON with every object's keys sorted: the hit rebuilds objects in their own key order.
function canonical(value) {
  if (Array.isArray(value)) return value.map(canonical);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(Object.keys(value).sort().map((key) => [key, canonical(value[key])]));
}

async function direct(archive, qido) {
  const answer = await fetch(`${archive}/${qido}`, { headers: { Accept: "application/dicom+json" } });
  return answer.json();
}

async function measure(client, upstream, archive, qido, rounds) {
  const message = request(upstream, qido);
  const calls = {
    search: async () => (await search(client, message)),
    direct: async () => ({ hit: true, json: await direct(archive, qido) }),
  };
  const reference = await direct(archive, qido);
  let equal = true;
  for (let i = 0; i < WARMUP; i++) {
    const found = (await calls.search()).json;
    equal = equal && JSON.stringify(canonical(found)) === JSON.stringify(canonical(reference));
    await calls.direct();
  }
  const samples = { search: [], direct: [] };
  let misses = 0;
  const names = Object.keys(calls);
  for (let i = 0; i < rounds; i++) {
    const order = i % 2 ? names : [...names].reverse();
    for (const name of order) {
      const start = process.hrtime.bigint();
      const { hit } = await calls[name]();
      samples[name].push(Number(process.hrtime.bigint() - start) / 1e9);
      if (!hit) misses += 1;
    }
  }
  return { ...samples, misses, equal };
}

async function main() {
  const [target, upstream, archive, rounds, ...qidos] = process.argv.slice(2);
  const client = new CacheService(target, grpc.credentials.createInsecure());
  const out = {};
  for (const qido of qidos) out[qido] = await measure(client, upstream, archive, qido, Number(rounds));
  client.close();
  console.log(JSON.stringify(out));
}

main().catch((error) => { console.error(error); process.exit(1); });
