// Cache one QIDO-RS search with one Search call: the server asks the archive on a miss.
//   dicomcache serve --upstream pacs=http://127.0.0.1:8042/dicom-web
//   node examples/node/search.js 127.0.0.1:50051 pacs 'studies?PatientID=P1&includefield=all'
"use strict";
const path = require("path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const protos = path.resolve(__dirname, "..", "..", "protos");
const definition = protoLoader.loadSync("dicomcache/v1/cache_service.proto", {
  includeDirs: [protos], keepCase: true, enums: String, defaults: true,
});
const { CacheService } = grpc.loadPackageDefinition(definition).dicomcache.v1;

const [target, upstream, qido] = process.argv.slice(2);
const url = new URL(qido, "qido:/");  // "studies/{uid}/series?Modality=CT", as after the base URL
const [, , studyUid = "", , seriesUid = ""] = url.pathname.split("/");
const level = "SEARCH_LEVEL_" + url.pathname.split("/").pop().toUpperCase();
const request = { upstream, level, study_uid: studyUid, series_uid: seriesUid, match: [] };
for (const [name, value] of url.searchParams) {
  if (name === "includefield") (request.include_fields ||= []).push(...value.split(","));
  else if (["limit", "offset"].includes(name)) request[name] = Number(value);
  else if (name === "fuzzymatching") request.fuzzy_matching = value === "true";
  else request.match.push({ name, values: [value] });  // a repeated name: one entry each
}

const client = new CacheService(target, grpc.credentials.createInsecure());
client.Search(request, { deadline: Date.now() + 10000 }, (error, response) => {
  if (error) { console.error(`${grpc.status[error.code]}: ${error.details}`); process.exit(1); }
  const { hit, age_seconds, stale, count } = response;
  console.log(JSON.stringify({ hit, age_seconds, stale, count, results: JSON.parse(response.dicom_json) }));
  client.close();
});
