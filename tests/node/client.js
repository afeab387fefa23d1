// A second-language client of the wire contract: loads protos/ at run time with
// @grpc/proto-loader and talks to a dicomcache server with @grpc/grpc-js.
//
//   node tests/node/client.js store  TARGET   stores an answer to a query, prints {}
//   node tests/node/client.js lookup TARGET   looks the query up, prints the response as JSON
//   node tests/node/client.js stats  TARGET   reads every page of GetStats (two namespaces a
//                                             page), prints {"pages": N, "namespaces": [...]}
//
// TLS and a token come from the environment, as a service would read them from its
// mounted secrets: DICOMCACHE_CA_FILE (the server's CA), DICOMCACHE_CERT_FILE and
// DICOMCACHE_KEY_FILE (mutual TLS), DICOMCACHE_TOKEN_FILE (a bearer token, sent as
// `authorization` metadata on every call). Without DICOMCACHE_CA_FILE: plaintext.
//
// The query is built here with its fields in an order of its own; the Python test
// builds the same query differently and expects the same cache entry.
"use strict";

const fs = require("fs");
const path = require("path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const PROTOS = path.resolve(__dirname, "..", "..", "protos");
const definition = protoLoader.loadSync("dicomcache/v1/cache_service.proto", {
  includeDirs: [PROTOS],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
});
const v1 = grpc.loadPackageDefinition(definition).dicomcache.v1;

const STUDY_UID = "1.2.826.0.1.3680043.8.498.77";
const SERIES_UID = STUDY_UID + ".1";
const INSTANCE_UID = SERIES_UID + ".1";

function text(vr, value) {
  return { vr: vr, values: { items: [{ text: value }] } };
}

const query = {
  include_fields: ["StudyDate", "Modality"],
  query_level: "QUERY_LEVEL_INSTANCE",
  patient_id: "NODE-1",
  min_study_date: { date: { year: 2024, month: 1, day: 2 } },
  max_study_date: { date: { year: 2024, month: 12, day: 31 }, hour: 23, minute: 59 },
};

const studies = [
  {
    uid: STUDY_UID,
    attributes: {
      elements: {
        [0x0020000d]: text("UI", STUDY_UID),
        [0x00100010]: {
          vr: "PN",
          values: { items: [{ person_name: { alphabetic: "Yamada^Tarou", ideographic: "山田^太郎" } }] },
        },
      },
    },
    series: [
      {
        uid: SERIES_UID,
        attributes: { elements: { [0x0020000e]: text("UI", SERIES_UID), [0x00080060]: text("CS", "MR") } },
        instances: [
          {
            uid: INSTANCE_UID,
            attributes: {
              elements: {
                [0x00080018]: text("UI", INSTANCE_UID),
                [0x00200013]: { vr: "IS", values: { items: [{ integer: "7" }] } },
              },
            },
          },
        ],
      },
    ],
  },
];

// Every page of GetStats, following next_page_token until it is empty.
function allStats(client, deadline, done) {
  const names = [];
  let pages = 0;
  const next = (token) => {
    client.GetStats({ page_size: 2, page_token: token }, { deadline }, (err, response) => {
      if (err) {
        done(err);
        return;
      }
      pages += 1;
      names.push(...(response.namespaces || []).map((entry) => entry.namespace));
      if (response.next_page_token) {
        next(response.next_page_token);
      } else {
        done(null, { pages: pages, namespaces: names });
      }
    });
  };
  next("");
}

function credentials() {
  const env = process.env;
  if (!env.DICOMCACHE_CA_FILE) {
    return grpc.credentials.createInsecure();
  }
  const read = (name) => (env[name] ? fs.readFileSync(env[name]) : null);
  const channel = grpc.credentials.createSsl(
    read("DICOMCACHE_CA_FILE"),
    read("DICOMCACHE_KEY_FILE"),
    read("DICOMCACHE_CERT_FILE"),
  );
  if (!env.DICOMCACHE_TOKEN_FILE) {
    return channel;
  }
  const token = fs.readFileSync(env.DICOMCACHE_TOKEN_FILE, "utf8").trim();
  const call = grpc.credentials.createFromMetadataGenerator((_params, callback) => {
    const metadata = new grpc.Metadata();
    metadata.add("authorization", `Bearer ${token}`);
    callback(null, metadata);
  });
  return grpc.credentials.combineChannelCredentials(channel, call);
}

function main() {
  const [command, target] = process.argv.slice(2);
  const client = new v1.CacheService(target, credentials());
  const deadline = new Date(Date.now() + 10000);
  const done = (err, response) => {
    if (err) {
      console.error(`${command} failed: ${err.code} ${err.details}`);
      process.exit(1);
    }
    console.log(JSON.stringify(response));
    client.close();
  };
  if (command === "store") {
    client.StoreQuery({ namespace: "node-test", query: query, studies: studies }, { deadline }, done);
  } else if (command === "lookup") {
    client.LookupQuery({ namespace: "node-test", query: query }, { deadline }, done);
  } else if (command === "stats") {
    allStats(client, deadline, done);
  } else {
    console.error("usage: client.js store|lookup|stats TARGET");
    process.exit(2);
  }
}

main();
