"""One scenario suite against every emulator profile and a server written from the docs only."""
