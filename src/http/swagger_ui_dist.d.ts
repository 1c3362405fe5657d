// swagger-ui-dist ships no types; this is the one file batchspool loads from it (for TypeScript; Deno types it as `any`).
declare module "swagger-ui-dist/absolute-path.js" {
  /** The installed package's folder. */
  const absolutePath: () => string;
  export default absolutePath;
}
