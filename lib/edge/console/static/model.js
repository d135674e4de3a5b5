// What the console derives from an Operation's JSON (google.longrunning).

/** google.rpc.Code names by number (google/rpc/code.proto). */
export const CODE_NAMES = [
  "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
  "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
  "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
  "UNAUTHENTICATED",
];

export const ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo";

export const STATES = ["Queued", "Running", "Succeeded", "Failed", "Cancelled"];

/** Quick filters (AIP-160): failures are any code but OK and CANCELLED. */
export const QUICK_FILTERS = {
  all: "",
  running: "done = false",
  failed: "error.code > 1",
  cancelled: "error.code = 1",
};

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** The metadata Struct's fields (the Any's "value"), or {}. */
export function metadataOf(op) {
  const metadata = op && op.metadata;
  if (!isObject(metadata)) return {};
  return isObject(metadata.value) ? metadata.value : metadata;
}

/** The response Struct's fields, or undefined. */
export function responseOf(op) {
  const response = op && op.response;
  if (!isObject(response)) return undefined;
  if (isObject(response.value)) return response.value;
  const { "@type": _type, ...rest } = response;
  return rest;
}

/** Queued, Running, Succeeded, Failed or Cancelled. */
export function stateOf(op) {
  if (!op.done) return Number(metadataOf(op).attempt || 0) === 0 ? "Queued" : "Running";
  if (op.error) return Number(op.error.code) === 1 ? "Cancelled" : "Failed";
  return "Succeeded";
}

export function isActive(op) {
  return !op.done;
}

/** progressPercent as an integer 0..100 (100 once succeeded). */
export function percentOf(op) {
  const value = Number(metadataOf(op).progressPercent);
  if (op.done && !op.error && !Number.isFinite(value)) return 100;
  if (!Number.isFinite(value)) return 0;
  return Math.max(0, Math.min(100, Math.round(value)));
}

export function codeName(code) {
  return CODE_NAMES[Number(code)] || "UNKNOWN";
}

/** The google.rpc.ErrorInfo details of a Status. */
export function errorInfos(error) {
  if (!error || !Array.isArray(error.details)) return [];
  return error.details.filter((detail) => isObject(detail) && detail["@type"] === ERROR_INFO_TYPE);
}

/** The last path segment of a name: its id. */
export function shortId(name) {
  return String(name).split("/").pop();
}
