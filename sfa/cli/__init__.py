"""The `sfa` operator command (click): thin over sfa.deploy, the services and the libraries."""
