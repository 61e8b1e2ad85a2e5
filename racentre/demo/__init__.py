"""The demo, in one place: `racentre demo --out DIR` (``racentre.demo.run``, also what scripts/demo.sh runs
against the served app with ``--url``) drives every capability through its real path and writes the
artefacts that outside verifiers check (README "Demo artefacts"; each issue lists its own).

Modules: ``run`` (the entry point ``run_demo``, and the HSM step), ``cli`` (``racentre demo`` and the demo
team's ``racentre console demo-team`` / ``console user totp``), ``team`` (the demo's RA team), ``client``
(the REST API over HTTP or in process), ``flows`` (RA + CA, KMC, TSA, seals, trust services through the
API), ``cmp`` (``openssl cmp`` against the CA), ``screenshots`` (the console in headless Chromium, also
used by the browser tests), ``audit`` (the auditor's signed export), ``samples`` (the sample PDF and OFD
it seals, also the tests' and benches'). The demo certifies nothing itself:
every certificate comes from the site's embedded CA (``racentre setup``), as in production.

Every step goes through the service's REST API — over HTTP to the running service with ``--url``
(as scripts/demo.sh does), else through the same app in process — over the configured HSM and
database; the demo only creates the API tokens of its demo staff and, like a subscriber's client,
makes its own keys and CSRs with OpenSSL (the unit's sealing key is generated in the HSM and its CSR
signed there).

- HSM: ``hsm-sm2-pub.pem``, ``hsm-sm2-msg.bin``, ``hsm-sm2-sig.der``.
- RA + CA, for SM2 and under ``ecdsa/`` for ECDSA P-256: ``root-ca.pem``, ``issuing-ca.pem``,
  ``civil-servant-sign.pem``, ``civil-servant-enc.pem``, ``unit.pem``, ``server.pem``, ``server.csr``,
  ``revoked.pem``, ``crl.der``, ``ocsp-request.der``, ``ocsp-response.der``.
- KMC: ``subscriber-sign-key.pem``, ``enc-envelope.der``, ``enc-envelope-signed.der``,
  ``kmc.pem``, ``recovered-envelope.der`` (2-of-3 recovery to ``recovery-recipient.pem``).
- TSA: ``tsa.pem``, ``tsa-data.bin``, ``tsq.der``, ``tsr.der``, ``ecdsa/tsq.der``, ``ecdsa/tsr.der``.
- Seals: ``seal.esl``, ``seal-maker.pem``, ``unsealed.pdf``, ``sealed.pdf``, ``sealed.ofd``,
  ``sealed-verify.json``; ``verify-report.json`` (our verifier's indication for every sealed
  artefact, and TOTAL_FAILED / HASH_FAILURE for a sealed OFD changed afterwards); ``ecdsa/sealed.pdf`` (an
  ECDSA seal with an ECDSA timestamp).
- Console: ``screenshots/*.png`` of the main pages in headless Chromium.
- Trust services, under ``trust/``: ``app-signed.p7s`` (attached SM2 SignedData by the demo
  application's HSM key, with signing time and an SM2 signature timestamp), ``app-signed-detached.p7s`` +
  ``app-signed-content.bin``, ``app.pem`` (its certificate), ``verify-report.json`` (our verdicts: the
  signature valid, code 1; the detached one over altered content TOTAL_FAILED / HASH_FAILURE),
  ``login-challenge.json`` + ``login-result.json`` (the civil servant's key, ``subscriber-sign-key.pem``,
  answers a login challenge with a raw SM2 signature made by OpenSSL with distid), ``login-replay.json``
  (the same answer again: refused), ``evidence.der`` (the signed, timestamped evidence record of the login,
  trust/evidence.py), ``evidence.json`` (its content), ``evidence-signer.pem``; ``app-enc.pem`` (the
  application's encryption certificate, key in the HSM) and ``envelope.der`` (GM/T 0010 EnvelopedData to it,
  which the demo opens again through the API).
- CMP (``racentre.demo.cmp``): ``cmp/ir.der``, ``cmp/ip.der``, ``cmp/certconf.der``,
  ``cmp/pkiconf.der``, ``cmp/rr.der``, ``cmp/rp.der``, ``cmp/cert.pem`` — ``openssl cmp`` against the CA.
- Audit: ``audit-export.json``, ``audit-export.json.sig`` (SM2 by the HSM audit key) and
  ``audit-public-key.pem``, as ``racentre audit export`` writes them.
"""
