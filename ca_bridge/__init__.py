"""ca_bridge: certificate, CRL and OCSP issuance over the HSM, embedded or upstream CA (issue 3)."""
