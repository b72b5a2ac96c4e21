"""The server-rendered web checkout: pages for people, on top of the same services as the API."""
