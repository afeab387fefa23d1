// The npm dicomweb-client, unchanged, searching a DICOMweb service:
//
//   node tests/node/dicomweb.js URL SEARCHES
//
// URL is the service root (Orthanc's /dicom-web, or dicomcache's /dicom-web/{upstream});
// SEARCHES a JSON list of [method, options] pairs, e.g.
// [["searchForStudies", {"queryParams": {"PatientID": "P1"}}]]. Prints the list of
// answers as JSON, in order; on a failed request, {"error": STATUS} in its place.
// DICOMCACHE_TOKEN (a bearer token) is sent as the Authorization header when set.
//
// dicomweb-client is written for browsers: xhr2 provides the XMLHttpRequest it calls.
"use strict";

global.XMLHttpRequest = require("xhr2");
const { api } = require("dicomweb-client");

const [url, searches] = process.argv.slice(2);
const token = process.env.DICOMCACHE_TOKEN;
const headers = token ? { Authorization: `Bearer ${token}` } : {};
const client = new api.DICOMwebClient({ url, headers });

async function main() {
  const answers = [];
  for (const [method, options] of JSON.parse(searches)) {
    try {
      answers.push(await client[method](options));
    } catch (error) {
      answers.push({ error: error.status === undefined ? String(error) : error.status });
    }
  }
  console.log(JSON.stringify(answers));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
