"""The API's routes, one module per resource (`hub.api.routes.<resource>`)."""
