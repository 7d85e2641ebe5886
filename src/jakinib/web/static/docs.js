// Swagger UI for /docs, from the locally served bundle (no CDN), started outside the HTML for the CSP.
window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
