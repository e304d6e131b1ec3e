/** Pure-WebCrypto PKI for ztna: a private CA and the mutual-TLS identities it issues. */
export {
  type CaOptions,
  createCa,
  type Identity,
  type IdentityOptions,
  issueIdentity,
  loadIdentity,
  readIdentityFiles,
  writeIdentityFiles,
} from "./ca.ts";
export { decodePem, encodePem } from "./pem.ts";
export {
  grantNames,
  type Grants,
  NODE_DNS_SUFFIX,
  readGrants,
  SERVICE_DNS_SUFFIX,
  serviceServerName,
} from "./grants.ts";
