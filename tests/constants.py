"""Values the test suite shares, in a module without side effects (tests/conftest.py sets the process's
token directory at import, so a child interpreter must never import it)."""

# OpenSSL's example "tsa_policy1" (openssl.cnf), which the interop checks expect: the suite's sites set it
TEST_TSA_POLICY = "1.2.3.4.1"
