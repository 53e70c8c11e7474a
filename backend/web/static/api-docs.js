// Starts Swagger UI on /docs (backend/web/docs.py). A file, not an inline script, so that
// the page's Content-Security-Policy needs no 'unsafe-inline'. The settings are FastAPI's
// defaults for its own /docs page.
"use strict";
window.ui = SwaggerUIBundle({
  url: document.getElementById("swagger-ui").dataset.openapiUrl,
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
