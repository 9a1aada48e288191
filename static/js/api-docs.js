/* The API docs page (/api/docs): Swagger UI from static/vendor on this server's schema.
   Loaded as a file, not inline, so the page runs under a Content-Security-Policy. */
const page = document.body.dataset;
window.ui = window.SwaggerUIBundle({
  url: page.openapiUrl,
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [window.SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  // Offline: no badge fetched from the public validator.
  validatorUrl: null,
  // "Try it out" from a logged-in browser: the session needs its CSRF token on writes.
  requestInterceptor: (request) => {
    if (page.csrfToken) request.headers["X-CSRFToken"] = page.csrfToken;
    return request;
  },
});
