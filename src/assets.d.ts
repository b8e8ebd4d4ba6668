// Files imported `with { type: "file" }` resolve to a path (embedded in the compiled binary).
declare module "swagger-ui-dist/swagger-ui-bundle.js" { const path: string; export default path; }
declare module "swagger-ui-dist/swagger-ui.css" { const path: string; export default path; }
// Service templates imported `with { type: "text" }` are embedded as strings.
declare module "*.service" { const text: string; export default text; }
declare module "*.timer" { const text: string; export default text; }
declare module "*.plist" { const text: string; export default text; }
declare module "*.apparmor" { const text: string; export default text; }
declare module "*.logrotate" { const text: string; export default text; }
declare module "*.newsyslog" { const text: string; export default text; }
