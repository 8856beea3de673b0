"""The web page on `serve`'s port: the run list rendered by the server, and the live page's static files."""
