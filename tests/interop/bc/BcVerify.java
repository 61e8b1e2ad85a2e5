// Independent verifier for the test suite, built on Bouncy Castle (Debian libbcprov/libbcpkix/libbcutil 1.72).
//
//   java -cp <classes>:bcprov.jar:bcpkix.jar:bcutil.jar BcVerify <subcommand> args...
//
// Exit status: 0 = verified, 1 = verification failed (one-line reason on stderr),
//              2 = usage or parse error.
// Inputs (keys, certificates, CRLs, CSRs, responses, CMS) are read as PEM or DER automatically.
// SM2 uses the default user ID "1234567812345678" unless --id is given.
//
// Subcommands:
//   sm2-sig   <public-key|cert> <message-file> <signature-file> [--id ID | --id-hex HEX] [--raw]
//   cert      <cert> <issuer-cert> [--at YYYYMMDDHHMMSSZ]
//   cert-path <leaf> <trust-anchors> [<intermediates>...] [--crl FILE]... [--at YYYYMMDDHHMMSSZ]
//             (anchor and intermediate files may hold several PEM certificates; revocation is
//              checked, for every certificate below the anchor, only when --crl is given)
//   csr       <csr>
//   crl       <crl> <issuer-cert>
//   ocsp      <response> <issuer-cert> [--serial HEX] [--nonce HEX]     (stdout: good|revoked|unknown)
//   cms       <signed-data> [--content FILE] [--ca ISSUER-CERT] [--ess]
//             (--ess: the first signer's signing-certificate-v2 attribute (RFC 5035) must be there and its
//              first ESSCertIDv2 must hash the signer certificate with the algorithm it names, issuerSerial
//              matching; stdout gains ess=<hash OID>)
//   tsp       <token-or-reply> [--data FILE] [--cert TSA-CERT] [--ca ISSUER-CERT]
//             (stdout: genTime=... serial=... policy=...; checks signature, ESS cert ID, the critical
//              timeStamping EKU and TSA validity at genTime; --ca: TSA cert signed by that CA)
//   seal      <SESeal-file>        GB/T 38540 seal: signedValue over DER(eSealInfo), maker cert inside
//   ses-sig   <SES_Signature-file> GB/T 38540 signature: signature over DER(toSign), signer cert inside
//   sm2-envelope <private-key> <envelope> <enc-cert> [--signer CERT]
//             a KMC key envelope, GB/T 35276 SM2EnvelopedKey or GM/T 0010 SignedAndEnvelopedData (bare or
//             in its ContentInfo): BC's SM2Engine (C1C3C2) opens the SM4 key with the recipient's private
//             key, SM4-ECB gives d, and d*G must be the encryption certificate's key; --signer: the
//             SignedAndEnvelopedData's SM2 signature over the encrypted content verifies with that cert
//   cms-sign  <pkcs8-private-key> <cert> <content-file> <out-file> [--alg SM3withSM2|SHA256withECDSA]
//             [--detached] [--chain CERT]...  BC's own CMSSignedDataGenerator makes a SignedData (signed
//             attributes as BC writes them) for the interop tests to verify with our code
//   selftest  <empty-dir>  make SM2 artefacts with BC's own builders and verify them through the
//             subcommands above (used once at build time to train the class-data-sharing archive)
//   batch     read argv lines from stdin (fields separated by TAB), print one line per command:
//             <exit-code> TAB <stdout> TAB <stderr>   (\\, \t, \n, \r escaped in stdout/stderr)

import java.io.BufferedReader;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.io.StringReader;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.security.KeyFactory;
import java.security.PublicKey;
import java.security.Security;
import java.security.Signature;
import java.security.cert.CertPath;
import java.security.cert.CertPathValidator;
import java.security.cert.CertStore;
import java.security.cert.CertificateFactory;
import java.security.cert.CollectionCertStoreParameters;
import java.security.cert.PKIXCertPathValidatorResult;
import java.security.cert.PKIXParameters;
import java.security.cert.TrustAnchor;
import java.security.cert.X509CRL;
import java.security.cert.X509Certificate;
import java.security.spec.X509EncodedKeySpec;
import java.text.SimpleDateFormat;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.Date;
import java.util.List;
import java.util.Set;
import java.util.TimeZone;

import org.bouncycastle.asn1.ASN1BitString;
import org.bouncycastle.asn1.ASN1Encodable;
import org.bouncycastle.asn1.ASN1Integer;
import org.bouncycastle.asn1.ASN1ObjectIdentifier;
import org.bouncycastle.asn1.ASN1OctetString;
import org.bouncycastle.asn1.ASN1Sequence;
import org.bouncycastle.asn1.DERSequence;
import org.bouncycastle.asn1.cms.Attribute;
import org.bouncycastle.asn1.cms.AttributeTable;
import org.bouncycastle.asn1.cms.ContentInfo;
import org.bouncycastle.asn1.ess.ESSCertIDv2;
import org.bouncycastle.asn1.ess.SigningCertificateV2;
import org.bouncycastle.asn1.ocsp.OCSPObjectIdentifiers;
import org.bouncycastle.asn1.pkcs.PKCSObjectIdentifiers;
import org.bouncycastle.asn1.x509.AlgorithmIdentifier;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.bouncycastle.asn1.x509.SubjectPublicKeyInfo;
import org.bouncycastle.cert.X509CRLHolder;
import org.bouncycastle.cert.X509CertificateHolder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.ocsp.BasicOCSPResp;
import org.bouncycastle.cert.ocsp.CertificateStatus;
import org.bouncycastle.cert.ocsp.OCSPResp;
import org.bouncycastle.cert.ocsp.RevokedStatus;
import org.bouncycastle.cert.ocsp.SingleResp;
import org.bouncycastle.cms.CMSProcessableByteArray;
import org.bouncycastle.cms.CMSSignedData;
import org.bouncycastle.cms.SignerInformation;
import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.bouncycastle.jcajce.spec.SM2ParameterSpec;
import org.bouncycastle.operator.ContentVerifierProvider;
import org.bouncycastle.operator.DigestCalculator;
import org.bouncycastle.operator.DigestCalculatorProvider;
import org.bouncycastle.operator.jcajce.JcaContentVerifierProviderBuilder;
import org.bouncycastle.operator.jcajce.JcaDigestCalculatorProviderBuilder;
import org.bouncycastle.pkcs.jcajce.JcaPKCS10CertificationRequest;
import org.bouncycastle.tsp.TimeStampResponse;
import org.bouncycastle.tsp.TimeStampToken;
import org.bouncycastle.util.Store;
import org.bouncycastle.util.encoders.Hex;
import org.bouncycastle.util.io.pem.PemObject;
import org.bouncycastle.util.io.pem.PemReader;

public final class BcVerify {
    static final String BC = "BC";
    static final String DEFAULT_ID = "1234567812345678";
    static final String SM2_SM3_OID = "1.2.156.10197.1.501";
    static final String SM2_SIGN_OID = "1.2.156.10197.1.301.1";
    static final String SM2_CURVE_OID = "1.2.156.10197.1.301";
    static final String SM3_OID = "1.2.156.10197.1.401";

    /** Exit 1: the artefact was understood and does not verify. */
    static final class Fail extends Exception {
        private static final long serialVersionUID = 1L;

        Fail(String m) { super(m); }
    }

    /** Exit 2: bad usage or an input that cannot be parsed. */
    static final class Usage extends Exception {
        private static final long serialVersionUID = 1L;

        Usage(String m) { super(m); }
    }

    // ------------------------------------------------------------------ entry points

    public static void main(String[] argv) throws Exception {
        Security.addProvider(new BouncyCastleProvider());
        if (argv.length > 0 && argv[0].equals("batch")) {
            System.exit(batch());
        }
        System.exit(run(argv, System.out, System.err));
    }

    static int run(String[] argv, PrintStream out, PrintStream err) {
        try {
            if (argv.length == 0) throw new Usage("usage: BcVerify <subcommand> args... (see source header)");
            String[] a = Arrays.copyOfRange(argv, 1, argv.length);
            switch (argv[0]) {
                case "sm2-sig": sm2Sig(new Args(a), out); break;
                case "cert": cert(new Args(a), out); break;
                case "cert-path": certPath(new Args(a), out); break;
                case "csr": csr(new Args(a), out); break;
                case "crl": crl(new Args(a), out); break;
                case "ocsp": ocsp(new Args(a), out); break;
                case "cms": cms(new Args(a), out); break;
                case "tsp": tsp(new Args(a), out); break;
                case "seal": sesSigned(new Args(a), out, "seal"); break;
                case "ses-sig": sesSigned(new Args(a), out, "ses-sig"); break;
                case "sm2-envelope": sm2Envelope(new Args(a), out); break;
                case "cms-sign": cmsSign(new Args(a), out); break;
                case "selftest": selftest(new Args(a), out); break;
                default: throw new Usage("unknown subcommand: " + argv[0]);
            }
            return 0;
        } catch (Usage e) {
            err.println("usage/parse error: " + oneLine(e.getMessage()));
            return 2;
        } catch (Fail e) {
            err.println("FAILED: " + oneLine(e.getMessage()));
            return 1;
        } catch (Throwable e) {
            // Anything thrown while verifying (not while parsing) counts as a failed verification.
            err.println("FAILED: " + oneLine(e.getClass().getSimpleName() + ": " + e.getMessage()));
            return 1;
        }
    }

    static int batch() throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        PrintStream stdout = new PrintStream(System.out, false, "UTF-8");
        String line;
        int worst = 0;
        while ((line = in.readLine()) != null) {
            if (line.isEmpty()) continue;
            ByteArrayOutputStream ob = new ByteArrayOutputStream(), eb = new ByteArrayOutputStream();
            PrintStream o = new PrintStream(ob, true, "UTF-8"), e = new PrintStream(eb, true, "UTF-8");
            int rc = run(line.split("\t", -1), o, e);
            worst = Math.max(worst, rc);
            stdout.println(rc + "\t" + esc(ob.toString("UTF-8")) + "\t" + esc(eb.toString("UTF-8")));
            stdout.flush();
        }
        return worst == 2 ? 2 : 0;
    }

    // ------------------------------------------------------------------ subcommands

    static void sm2Sig(Args a, PrintStream out) throws Exception {
        a.need(3, "sm2-sig <public-key|cert> <message-file> <signature-file> [--id ID|--id-hex HEX] [--raw]");
        PublicKey key = loadPublicKey(a.pos(0));
        ASN1Encodable curve = SubjectPublicKeyInfo.getInstance(key.getEncoded()).getAlgorithm().getParameters();
        if (!(curve instanceof ASN1ObjectIdentifier) || !((ASN1ObjectIdentifier) curve).getId().equals(SM2_CURVE_OID))
            throw new Fail("public key is not an SM2 key (curve parameters " + curve + ")");
        byte[] msg = readFile(a.pos(1));
        byte[] sig = readFile(a.pos(2));
        byte[] id = a.opt("--id-hex") != null ? hex(a.opt("--id-hex"))
                : (a.opt("--id") != null ? a.opt("--id") : DEFAULT_ID).getBytes(StandardCharsets.UTF_8);
        if (a.flag("--raw")) {
            if (sig.length != 64) throw new Fail("raw SM2 signature must be 64 bytes, got " + sig.length);
            sig = new DERSequence(new ASN1Encodable[] {
                new ASN1Integer(new BigInteger(1, Arrays.copyOfRange(sig, 0, 32))),
                new ASN1Integer(new BigInteger(1, Arrays.copyOfRange(sig, 32, 64)))}).getEncoded("DER");
        }
        Signature s = Signature.getInstance("SM3withSM2", BC);
        s.setParameter(new SM2ParameterSpec(id));
        s.initVerify(key);
        s.update(msg);
        if (!s.verify(sig)) throw new Fail("SM3withSM2 signature invalid (id=" + printable(id) + ")");
        out.println("OK sm2-sig id=" + printable(id));
    }

    static void sm2Envelope(Args a, PrintStream out) throws Exception {
        a.need(3, "sm2-envelope <private-key> <envelope> <enc-cert> [--signer CERT]");
        BigInteger d = loadSm2PrivateScalar(a.pos(0));
        org.bouncycastle.asn1.x9.X9ECParameters x9 = org.bouncycastle.asn1.gm.GMNamedCurves.getByName("sm2p256v1");
        org.bouncycastle.crypto.params.ECDomainParameters dom = new org.bouncycastle.crypto.params.ECDomainParameters(
                x9.getCurve(), x9.getG(), x9.getN(), x9.getH());
        ASN1Sequence env;
        try {
            env = ASN1Sequence.getInstance(der(a.pos(1)));
            if (env.getObjectAt(0) instanceof ASN1ObjectIdentifier)          // ContentInfo
                env = ASN1Sequence.getInstance(
                        org.bouncycastle.asn1.ASN1TaggedObject.getInstance(env.getObjectAt(1)).getObject());
        } catch (Exception e) {
            throw new Usage("cannot parse envelope " + a.pos(1) + ": " + e.getMessage());
        }
        byte[] cipher, encrypted, signature = null;
        String kind;
        if (env.getObjectAt(0) instanceof ASN1Integer) {                       // GM/T 0010 SignedAndEnvelopedData
            kind = "SignedAndEnvelopedData";
            ASN1Sequence ri = ASN1Sequence.getInstance(
                    org.bouncycastle.asn1.ASN1Set.getInstance(env.getObjectAt(1)).getObjectAt(0));
            cipher = ASN1OctetString.getInstance(ri.getObjectAt(3)).getOctets();
            ASN1Sequence eci = ASN1Sequence.getInstance(env.getObjectAt(3));
            encrypted = ASN1OctetString.getInstance(
                    org.bouncycastle.asn1.ASN1TaggedObject.getInstance(eci.getObjectAt(2)), false).getOctets();
            ASN1Sequence si = ASN1Sequence.getInstance(org.bouncycastle.asn1.ASN1Set.getInstance(
                    env.getObjectAt(env.size() - 1)).getObjectAt(0));
            signature = ASN1OctetString.getInstance(si.getObjectAt(si.size() - 1)).getOctets();
        } else {                                                               // GB/T 35276 SM2EnvelopedKey
            kind = "SM2EnvelopedKey";
            cipher = env.getObjectAt(1).toASN1Primitive().getEncoded("DER");
            encrypted = ASN1BitString.getInstance(env.getObjectAt(3)).getOctets();
        }
        // GM/T 0009 SM2Cipher { x, y, hash, cipherText } -> BC's C1 || C3 || C2
        ASN1Sequence c = ASN1Sequence.getInstance(cipher);
        byte[] x = fixed32(ASN1Integer.getInstance(c.getObjectAt(0)).getPositiveValue());
        byte[] y = fixed32(ASN1Integer.getInstance(c.getObjectAt(1)).getPositiveValue());
        byte[] c3 = ASN1OctetString.getInstance(c.getObjectAt(2)).getOctets();
        byte[] c2 = ASN1OctetString.getInstance(c.getObjectAt(3)).getOctets();
        ByteArrayOutputStream in = new ByteArrayOutputStream();
        in.write(4);
        in.write(x);
        in.write(y);
        in.write(c3);
        in.write(c2);
        org.bouncycastle.crypto.engines.SM2Engine engine =
                new org.bouncycastle.crypto.engines.SM2Engine(org.bouncycastle.crypto.engines.SM2Engine.Mode.C1C3C2);
        engine.init(false, new org.bouncycastle.crypto.params.ECPrivateKeyParameters(d, dom));
        byte[] sm4Key;
        try {
            byte[] all = in.toByteArray();
            sm4Key = engine.processBlock(all, 0, all.length);
        } catch (org.bouncycastle.crypto.InvalidCipherTextException e) {
            throw new Fail("SM2 decryption of the content-encryption key failed: " + e.getMessage());
        }
        if (sm4Key.length != 16) throw new Fail("the content-encryption key is " + sm4Key.length + " bytes, not 16");
        javax.crypto.Cipher sm4 = javax.crypto.Cipher.getInstance("SM4/ECB/NoPadding", BC);
        sm4.init(javax.crypto.Cipher.DECRYPT_MODE, new javax.crypto.spec.SecretKeySpec(sm4Key, "SM4"));
        BigInteger encD = new BigInteger(1, sm4.doFinal(encrypted));
        byte[] q = dom.getG().multiply(encD).normalize().getEncoded(false);
        byte[] certQ = loadCertHolder(a.pos(2)).getSubjectPublicKeyInfo().getPublicKeyData().getOctets();
        if (!Arrays.equals(q, certQ)) throw new Fail("the enveloped private key does not match the certificate's key");
        if (kind.equals("SM2EnvelopedKey")
                && !Arrays.equals(ASN1BitString.getInstance(env.getObjectAt(2)).getOctets(), certQ))
            throw new Fail("sm2PublicKey of the SM2EnvelopedKey is not the certificate's key");
        if (a.opt("--signer") != null) {
            if (signature == null) throw new Usage("--signer: an SM2EnvelopedKey carries no signature");
            Signature v = Signature.getInstance("SM3withSM2", BC);
            v.setParameter(new SM2ParameterSpec(DEFAULT_ID.getBytes(StandardCharsets.UTF_8)));
            v.initVerify(loadPublicKey(a.opt("--signer")));
            v.update(encrypted);
            if (!v.verify(signature)) throw new Fail("the KMC signature over the encrypted content is invalid");
        }
        out.println("OK sm2-envelope " + kind + (a.opt("--signer") != null ? " signed" : ""));
    }

    static byte[] fixed32(BigInteger v) throws Fail {
        byte[] b = v.toByteArray();
        if (b.length > 33 || (b.length == 33 && b[0] != 0)) throw new Fail("SM2Cipher coordinate longer than 32 bytes");
        byte[] r = new byte[32];
        System.arraycopy(b, Math.max(0, b.length - 32), r, 32 - Math.min(32, b.length), Math.min(32, b.length));
        return r;
    }

    /** The scalar d of an SM2 private key file: PKCS#8 or SEC1 (RFC 5915), PEM or DER. */
    static BigInteger loadSm2PrivateScalar(String path) throws Usage {
        byte[] d = der(path);
        try {
            ASN1Sequence seq = ASN1Sequence.getInstance(d);
            if (seq.getObjectAt(1) instanceof ASN1Sequence)                  // PKCS#8 PrivateKeyInfo
                seq = ASN1Sequence.getInstance(
                        org.bouncycastle.asn1.pkcs.PrivateKeyInfo.getInstance(seq).parsePrivateKey());
            return org.bouncycastle.asn1.sec.ECPrivateKey.getInstance(seq).getKey();
        } catch (Exception e) {
            throw new Usage("cannot parse SM2 private key " + path + ": " + e.getMessage());
        }
    }

    static void cert(Args a, PrintStream out) throws Exception {
        a.need(2, "cert <cert> <issuer-cert> [--at YYYYMMDDHHMMSSZ]");
        X509Certificate c = loadCert(a.pos(0));
        X509Certificate issuer = loadCert(a.pos(1));
        if (!c.getIssuerX500Principal().equals(issuer.getSubjectX500Principal()))
            throw new Fail("issuer name " + c.getIssuerX500Principal() + " != issuer subject "
                    + issuer.getSubjectX500Principal());
        try {
            c.verify(issuer.getPublicKey(), BC);
        } catch (java.security.SignatureException e) {
            throw new Fail("certificate signature (" + c.getSigAlgName() + ") invalid: " + e.getMessage());
        }
        Date at = a.date("--at");
        try {
            c.checkValidity(at);
        } catch (java.security.cert.CertificateException e) {
            throw new Fail("not valid at " + at + ": " + e.getMessage());
        }
        out.println("OK cert alg=" + c.getSigAlgName() + " subject=" + c.getSubjectX500Principal());
    }

    static void certPath(Args a, PrintStream out) throws Exception {
        a.need(2, "cert-path <leaf> <trust-anchor> [<intermediate>...] [--crl FILE]... [--at TIME]");
        X509Certificate leaf = loadCert(a.pos(0));
        List<X509Certificate> anchors = loadCerts(a.pos(1));
        List<X509Certificate> chain = new ArrayList<>();
        chain.add(leaf);
        List<X509Certificate> inter = new ArrayList<>();
        for (int i = 2; i < a.positional.size(); i++) inter.addAll(loadCerts(a.pos(i)));
        // order intermediates from the leaf upwards by issuer/subject names
        X509Certificate cur = leaf;
        while (!inter.isEmpty()) {
            boolean anchored = false;
            for (X509Certificate x : anchors)
                anchored |= x.getSubjectX500Principal().equals(cur.getIssuerX500Principal());
            if (anchored) break;
            X509Certificate next = null;
            for (X509Certificate x : inter)
                if (x.getSubjectX500Principal().equals(cur.getIssuerX500Principal())) { next = x; break; }
            if (next == null) break;  // the rest are not on this path (or the anchor issues cur)
            inter.remove(next);
            chain.add(next);
            cur = next;
        }
        List<Object> crls = new ArrayList<>();
        for (String f : a.opts("--crl")) crls.add(loadCrl(f));
        CertificateFactory cf = CertificateFactory.getInstance("X.509", BC);
        CertPath path = cf.generateCertPath(chain);
        Set<TrustAnchor> tas = new java.util.HashSet<>();
        for (X509Certificate x : anchors) tas.add(new TrustAnchor(x, null));
        PKIXParameters params = new PKIXParameters(tas);
        params.setRevocationEnabled(!crls.isEmpty());
        if (!crls.isEmpty())
            params.addCertStore(CertStore.getInstance("Collection", new CollectionCertStoreParameters(crls), BC));
        Date at = a.date("--at");
        params.setDate(at);
        CertPathValidator v = CertPathValidator.getInstance("PKIX", BC);
        try {
            PKIXCertPathValidatorResult r = (PKIXCertPathValidatorResult) v.validate(path, params);
            out.println("OK cert-path length=" + chain.size() + " revocation=" + (!crls.isEmpty())
                    + " anchor=" + r.getTrustAnchor().getTrustedCert().getSubjectX500Principal());
        } catch (java.security.cert.CertPathValidatorException e) {
            String cause = e.getCause() != null ? " (" + e.getCause().getMessage() + ")" : "";
            throw new Fail("path validation failed at index " + e.getIndex() + ": " + e.getMessage() + cause);
        }
    }

    static void csr(Args a, PrintStream out) throws Exception {
        a.need(1, "csr <csr>");
        JcaPKCS10CertificationRequest req;
        try {
            req = new JcaPKCS10CertificationRequest(der(a.pos(0)));
        } catch (Exception e) {
            throw new Usage("cannot parse CSR " + a.pos(0) + ": " + e.getMessage());
        }
        ContentVerifierProvider vp = new JcaContentVerifierProviderBuilder().setProvider(BC)
                .build(req.getSubjectPublicKeyInfo());
        if (!req.isSignatureValid(vp))
            throw new Fail("CSR self-signature (" + algName(req.getSignatureAlgorithm()) + ") invalid");
        out.println("OK csr alg=" + algName(req.getSignatureAlgorithm()) + " subject=" + req.getSubject());
    }

    static void crl(Args a, PrintStream out) throws Exception {
        a.need(2, "crl <crl> <issuer-cert>");
        X509CRLHolder crl;
        try {
            crl = new X509CRLHolder(der(a.pos(0)));
        } catch (Exception e) {
            throw new Usage("cannot parse CRL " + a.pos(0) + ": " + e.getMessage());
        }
        X509CertificateHolder issuer = loadCertHolder(a.pos(1));
        if (!crl.getIssuer().equals(issuer.getSubject()))
            throw new Fail("CRL issuer " + crl.getIssuer() + " != issuer subject " + issuer.getSubject());
        if (!crl.isSignatureValid(verifier(issuer)))
            throw new Fail("CRL signature (" + algName(crl.toASN1Structure().getSignatureAlgorithm()) + ") invalid");
        out.println("OK crl revoked=" + crl.getRevokedCertificates().size() + " thisUpdate="
                + gt(crl.getThisUpdate()));
    }

    static void ocsp(Args a, PrintStream out) throws Exception {
        a.need(2, "ocsp <response> <issuer-cert> [--serial HEX] [--nonce HEX]");
        OCSPResp resp;
        try {
            resp = new OCSPResp(der(a.pos(0)));
        } catch (Exception e) {
            throw new Usage("cannot parse OCSP response " + a.pos(0) + ": " + e.getMessage());
        }
        X509CertificateHolder issuer = loadCertHolder(a.pos(1));
        if (resp.getStatus() != OCSPResp.SUCCESSFUL) throw new Fail("OCSP responseStatus=" + resp.getStatus());
        BasicOCSPResp basic = (BasicOCSPResp) resp.getResponseObject();
        X509CertificateHolder signer = issuer;
        X509CertificateHolder[] certs = basic.getCerts();
        if (certs != null && certs.length > 0 && !certs[0].equals(issuer)) {
            // delegated responder: must be issued by the CA and carry id-kp-OCSPSigning
            signer = certs[0];
            if (!signer.getIssuer().equals(issuer.getSubject()) || !signer.isSignatureValid(verifier(issuer)))
                throw new Fail("responder certificate not signed by the issuer");
            X509Certificate sc = new JcaX509CertificateConverter().setProvider(BC).getCertificate(signer);
            List<String> eku = sc.getExtendedKeyUsage();
            if (eku == null || !eku.contains(KeyPurposeId.id_kp_OCSPSigning.getId()))
                throw new Fail("delegated responder certificate lacks id-kp-OCSPSigning");
            if (!signer.isValidOn(basic.getProducedAt())) throw new Fail("responder certificate not valid at producedAt");
        }
        if (!basic.isSignatureValid(verifier(signer))) throw new Fail("BasicOCSPResponse signature invalid");
        String nonce = a.opt("--nonce");
        if (nonce != null) {
            Extension ext = basic.getExtension(OCSPObjectIdentifiers.id_pkix_ocsp_nonce);
            if (ext == null) throw new Fail("response has no nonce");
            byte[] want = hex(nonce), raw = ext.getExtnValue().getOctets();
            boolean match = Arrays.equals(raw, want);
            if (!match) {
                try {
                    match = Arrays.equals(ASN1OctetString.getInstance(raw).getOctets(), want);
                } catch (Exception ignored) {
                    // not an OCTET STRING: only the raw comparison applies
                }
            }
            if (!match) throw new Fail("nonce mismatch: " + Hex.toHexString(raw));
        }
        DigestCalculatorProvider dcp = new JcaDigestCalculatorProviderBuilder().setProvider(BC).build();
        String serial = a.opt("--serial");
        SingleResp chosen = null;
        for (SingleResp sr : basic.getResponses()) {
            if (serial != null && !sr.getCertID().getSerialNumber().equals(new BigInteger(serial, 16))) continue;
            chosen = sr;
            break;
        }
        if (chosen == null) throw new Fail("no SingleResponse for serial " + serial);
        if (!chosen.getCertID().matchesIssuer(issuer, dcp)) throw new Fail("CertID does not match the issuer");
        CertificateStatus st = chosen.getCertStatus();
        String status;
        if (st == CertificateStatus.GOOD) {
            status = "good";
        } else if (st instanceof RevokedStatus) {
            RevokedStatus rs = (RevokedStatus) st;
            status = "revoked";
            out.println(status + " serial=" + chosen.getCertID().getSerialNumber().toString(16)
                    + " revocationTime=" + gt(rs.getRevocationTime())
                    + (rs.hasRevocationReason() ? " reason=" + rs.getRevocationReason() : ""));
            return;
        } else {
            status = "unknown";
        }
        out.println(status + " serial=" + chosen.getCertID().getSerialNumber().toString(16));
    }

    static void cms(Args a, PrintStream out) throws Exception {
        a.need(1, "cms <signed-data> [--content FILE] [--ca ISSUER-CERT]");
        CMSSignedData sd;
        try {
            byte[] d = der(a.pos(0));
            sd = a.opt("--content") != null
                    ? new CMSSignedData(new CMSProcessableByteArray(readFile(a.opt("--content"))), d)
                    : new CMSSignedData(d);
        } catch (Usage e) {
            throw e;
        } catch (Exception e) {
            throw new Usage("cannot parse CMS SignedData " + a.pos(0) + ": " + e.getMessage());
        }
        if (sd.getSignedContent() == null) throw new Usage("detached signature: give --content FILE");
        Collection<SignerInformation> signers = sd.getSignerInfos().getSigners();
        if (signers.isEmpty()) throw new Fail("no SignerInfo");
        Store<X509CertificateHolder> certs = sd.getCertificates();
        for (SignerInformation si : signers) {
            @SuppressWarnings("unchecked")
            Collection<X509CertificateHolder> m = certs.getMatches(si.getSID());
            if (m.isEmpty()) throw new Fail("signer certificate not in the SignedData");
            X509CertificateHolder c = m.iterator().next();
            checkIssuedBy(c, a.opt("--ca"));
            if (!si.verify(signerVerifier(c)))
                throw new Fail("SignerInfo signature invalid for " + c.getSubject());
        }
        SignerInformation first = signers.iterator().next();
        String ess = "";
        if (a.flag("--ess")) {
            @SuppressWarnings("unchecked")
            X509CertificateHolder c = (X509CertificateHolder) certs.getMatches(first.getSID()).iterator().next();
            ess = " ess=" + checkEssCertIdV2(first, c);
        }
        out.println("OK cms signers=" + signers.size() + " contentType=" + sd.getSignedContentTypeOID()
                + " digestAlg=" + first.getDigestAlgOID() + " sigAlg=" + first.getEncryptionAlgOID() + ess);
    }

    /** BC's ESSCertIDv2 (DEFAULT sha256 when absent) hashed by BC's digest provider; returns the hash OID. */
    static String checkEssCertIdV2(SignerInformation si, X509CertificateHolder cert) throws Exception {
        AttributeTable attrs = si.getSignedAttributes();
        Attribute attr = attrs == null ? null : attrs.get(PKCSObjectIdentifiers.id_aa_signingCertificateV2);
        if (attr == null) throw new Fail("no signing-certificate-v2 attribute");
        ESSCertIDv2 id = SigningCertificateV2.getInstance(attr.getAttrValues().getObjectAt(0)).getCerts()[0];
        DigestCalculator dc = new JcaDigestCalculatorProviderBuilder().setProvider(BC).build()
                .get(id.getHashAlgorithm());
        dc.getOutputStream().write(cert.getEncoded());
        dc.getOutputStream().close();
        if (!Arrays.equals(dc.getDigest(), id.getCertHash()))
            throw new Fail("ESSCertIDv2 hash does not match the signer certificate");
        if (id.getIssuerSerial() != null && !id.getIssuerSerial().getSerial().getValue().equals(cert.getSerialNumber()))
            throw new Fail("ESSCertIDv2 issuerSerial does not name the signer certificate");
        return id.getHashAlgorithm().getAlgorithm().getId();
    }

    static void cmsSign(Args a, PrintStream out) throws Exception {
        a.need(4, "cms-sign <pkcs8-private-key> <cert> <content-file> <out-file> [--alg A] [--detached] [--chain CERT]");
        java.security.PrivateKey key = KeyFactory.getInstance("EC", BC).generatePrivate(
                new java.security.spec.PKCS8EncodedKeySpec(der(a.pos(0))));
        X509CertificateHolder cert = loadCertHolder(a.pos(1));
        String alg = a.opt("--alg") != null ? a.opt("--alg") : "SM3withSM2";
        org.bouncycastle.operator.ContentSigner signer =
                new org.bouncycastle.operator.jcajce.JcaContentSignerBuilder(alg).setProvider(BC).build(key);
        org.bouncycastle.cms.CMSSignedDataGenerator gen = new org.bouncycastle.cms.CMSSignedDataGenerator();
        gen.addSignerInfoGenerator(new org.bouncycastle.cms.SignerInfoGeneratorBuilder(
                new JcaDigestCalculatorProviderBuilder().setProvider(BC).build()).build(signer, cert));
        gen.addCertificate(cert);
        if (a.opt("--chain") != null) gen.addCertificate(loadCertHolder(a.opt("--chain")));
        byte[] cms = gen.generate(new CMSProcessableByteArray(readFile(a.pos(2))), !a.flag("--detached")).getEncoded();
        Files.write(Paths.get(a.pos(3)), cms);
        out.println("OK cms-sign " + alg + (a.flag("--detached") ? " detached" : " attached"));
    }

    static void tsp(Args a, PrintStream out) throws Exception {
        a.need(1, "tsp <token-or-reply> [--data FILE] [--cert TSA-CERT] [--ca ISSUER-CERT]");
        byte[] d = der(a.pos(0));
        TimeStampToken tok;
        try {
            ASN1Sequence seq = ASN1Sequence.getInstance(d);
            if (seq.getObjectAt(0) instanceof ASN1ObjectIdentifier) {
                tok = new TimeStampToken(ContentInfo.getInstance(seq));
            } else {
                TimeStampResponse r = new TimeStampResponse(d);
                if (r.getStatus() != 0 && r.getStatus() != 1)
                    throw new Fail("TSA status=" + r.getStatus() + " " + r.getStatusString());
                tok = r.getTimeStampToken();
                if (tok == null) throw new Fail("granted reply without a token");
            }
        } catch (Fail e) {
            throw e;
        } catch (Exception e) {
            throw new Usage("cannot parse timestamp " + a.pos(0) + ": " + e.getMessage());
        }
        X509CertificateHolder tsa = null;
        if (a.opt("--cert") != null) {
            tsa = loadCertHolder(a.opt("--cert"));
        } else {
            @SuppressWarnings("unchecked")
            Collection<X509CertificateHolder> m = tok.getCertificates().getMatches(tok.getSID());
            if (m.isEmpty()) throw new Fail("TSA certificate not in the token (use --cert)");
            tsa = m.iterator().next();
        }
        checkIssuedBy(tsa, a.opt("--ca"));
        // checks the signature, the ESS certificate ID, the critical timeStamping EKU and validity at genTime
        tok.validate(signerVerifier(tsa));
        if (a.opt("--data") != null) {
            AlgorithmIdentifier alg = tok.getTimeStampInfo().getHashAlgorithm();
            DigestCalculator dc = new JcaDigestCalculatorProviderBuilder().setProvider(BC).build().get(alg);
            dc.getOutputStream().write(readFile(a.opt("--data")));
            dc.getOutputStream().close();
            if (!Arrays.equals(dc.getDigest(), tok.getTimeStampInfo().getMessageImprintDigest()))
                throw new Fail("message imprint does not match the data");
        }
        out.println("genTime=" + gt(tok.getTimeStampInfo().getGenTime()) + " serial="
                + tok.getTimeStampInfo().getSerialNumber().toString(16)
                + " policy=" + tok.getTimeStampInfo().getPolicy());
    }

    /**
     * GB/T 38540 SESeal and SES_Signature share a shape: SEQUENCE { tbs, cert OCTET STRING,
     * algorithm OID, signature BIT STRING, ... }; the signature covers DER(tbs) under the key in cert.
     */
    static void sesSigned(Args a, PrintStream out, String what) throws Exception {
        a.need(1, what + " <file> [--id ID]");
        ASN1Sequence seq;
        X509CertificateHolder c;
        ASN1ObjectIdentifier alg;
        byte[] tbs, sig;
        try {
            seq = ASN1Sequence.getInstance(der(a.pos(0)));
            tbs = seq.getObjectAt(0).toASN1Primitive().getEncoded("DER");
            c = new X509CertificateHolder(ASN1OctetString.getInstance(seq.getObjectAt(1)).getOctets());
            alg = ASN1ObjectIdentifier.getInstance(seq.getObjectAt(2));
            sig = ASN1BitString.getInstance(seq.getObjectAt(3)).getOctets();
        } catch (Exception e) {
            throw new Usage("cannot parse " + what + " " + a.pos(0) + ": " + e.getMessage());
        }
        if (!alg.getId().equals(SM2_SM3_OID)) throw new Fail("unsupported signature algorithm " + alg);
        if (sig.length == 64) {  // raw r||s tolerated; GB/T 38540 v4 prescribes DER
            sig = new DERSequence(new ASN1Encodable[] {
                new ASN1Integer(new BigInteger(1, Arrays.copyOfRange(sig, 0, 32))),
                new ASN1Integer(new BigInteger(1, Arrays.copyOfRange(sig, 32, 64)))}).getEncoded("DER");
        }
        PublicKey key = KeyFactory.getInstance("EC", BC)
                .generatePublic(new X509EncodedKeySpec(c.getSubjectPublicKeyInfo().getEncoded("DER")));
        Signature s = Signature.getInstance("SM3withSM2", BC);
        s.setParameter(new SM2ParameterSpec((a.opt("--id") != null ? a.opt("--id") : DEFAULT_ID)
                .getBytes(StandardCharsets.UTF_8)));
        s.initVerify(key);
        s.update(tbs);
        if (!s.verify(sig)) throw new Fail(what + " signature invalid");
        out.println("OK " + what + " signer=" + c.getSubject());
    }


    /** BC-made SM2 artefacts pushed through the subcommands: a sanity check and a CDS training run. */
    static void selftest(Args a, PrintStream out) throws Exception {
        a.need(1, "selftest <dir>");
        java.nio.file.Path dir = Paths.get(a.pos(0));
        java.security.KeyPairGenerator g = java.security.KeyPairGenerator.getInstance("EC", BC);
        g.initialize(new java.security.spec.ECGenParameterSpec("sm2p256v1"));
        java.security.KeyPair kp = g.generateKeyPair();
        org.bouncycastle.operator.ContentSigner signer =
                new org.bouncycastle.operator.jcajce.JcaContentSignerBuilder("SM3withSM2").setProvider(BC)
                        .build(kp.getPrivate());
        org.bouncycastle.asn1.x500.X500Name name = new org.bouncycastle.asn1.x500.X500Name("CN=BcVerify selftest");
        Date now = new Date();
        X509CertificateHolder cert = new org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder(name,
                BigInteger.valueOf(now.getTime()), new Date(now.getTime() - 60000),
                new Date(now.getTime() + 3600000), name, kp.getPublic())
                .addExtension(Extension.basicConstraints, true, new org.bouncycastle.asn1.x509.BasicConstraints(true))
                .addExtension(Extension.keyUsage, true, new org.bouncycastle.asn1.x509.KeyUsage(
                        org.bouncycastle.asn1.x509.KeyUsage.keyCertSign | org.bouncycastle.asn1.x509.KeyUsage.cRLSign
                        | org.bouncycastle.asn1.x509.KeyUsage.digitalSignature))
                .build(signer);
        byte[] csr = new org.bouncycastle.pkcs.jcajce.JcaPKCS10CertificationRequestBuilder(name, kp.getPublic())
                .build(signer).getEncoded();
        byte[] crl = new org.bouncycastle.cert.X509v2CRLBuilder(name, now).build(signer).getEncoded();
        byte[] msg = "selftest".getBytes(StandardCharsets.US_ASCII);
        Signature s = Signature.getInstance("SM3withSM2", BC);
        s.initSign(kp.getPrivate());
        s.update(msg);
        byte[] sig = s.sign();
        org.bouncycastle.cms.CMSSignedDataGenerator gen = new org.bouncycastle.cms.CMSSignedDataGenerator();
        gen.addSignerInfoGenerator(new org.bouncycastle.cms.jcajce.JcaSignerInfoGeneratorBuilder(
                new JcaDigestCalculatorProviderBuilder().setProvider(BC).build()).build(signer, cert));
        gen.addCertificate(cert);
        byte[] cms = gen.generate(new CMSProcessableByteArray(msg), true).getEncoded();
        String[][] files = {{"cert.der", null}, {"csr.der", null}, {"crl.der", null}, {"msg", null},
                            {"sig", null}, {"pub.der", null}, {"cms.der", null}};
        byte[][] data = {cert.getEncoded(), csr, crl, msg, sig, kp.getPublic().getEncoded(), cms};
        for (int i = 0; i < files.length; i++) {
            files[i][1] = dir.resolve(files[i][0]).toString();
            Files.write(Paths.get(files[i][1]), data[i]);
        }
        String c = files[0][1];
        String[][] cmds = {
            {"sm2-sig", files[5][1], files[3][1], files[4][1]},
            {"cert", c, c},
            {"cert-path", c, c, "--crl", files[2][1]},
            {"csr", files[1][1]},
            {"crl", files[2][1], c},
            {"cms", files[6][1]},
        };
        ByteArrayOutputStream eb = new ByteArrayOutputStream();
        PrintStream e = new PrintStream(eb, true, "UTF-8");
        for (String[] cmd : cmds) {
            if (run(cmd, new PrintStream(new ByteArrayOutputStream()), e) != 0)
                throw new Fail("selftest " + cmd[0] + ": " + eb.toString("UTF-8").trim());
        }
        // and one negative: the signature must not verify under another ID
        if (run(new String[] {"sm2-sig", files[5][1], files[3][1], files[4][1], "--id", "x"},
                new PrintStream(new ByteArrayOutputStream()), e) != 1)
            throw new Fail("selftest: wrong ID accepted");
        out.println("OK selftest " + cmds.length + " subcommands");
    }

    // ------------------------------------------------------------------ helpers

    static final class Args {
        final List<String> positional = new ArrayList<>();
        final List<String[]> options = new ArrayList<>();
        static final Set<String> FLAGS = Set.of("--raw", "--ess", "--detached");

        Args(String[] a) throws Usage {
            for (int i = 0; i < a.length; i++) {
                if (a[i].startsWith("--")) {
                    if (FLAGS.contains(a[i])) {
                        options.add(new String[] {a[i], ""});
                    } else {
                        if (i + 1 >= a.length) throw new Usage("option " + a[i] + " needs a value");
                        options.add(new String[] {a[i], a[++i]});
                    }
                } else {
                    positional.add(a[i]);
                }
            }
        }

        void need(int n, String usage) throws Usage {
            if (positional.size() < n) throw new Usage(usage);
        }

        String pos(int i) { return positional.get(i); }

        String opt(String name) {
            String v = null;
            for (String[] o : options) if (o[0].equals(name)) v = o[1];
            return v;
        }

        List<String> opts(String name) {
            List<String> r = new ArrayList<>();
            for (String[] o : options) if (o[0].equals(name)) r.add(o[1]);
            return r;
        }

        boolean flag(String name) { return opt(name) != null; }

        Date date(String name) throws Usage {
            String v = opt(name);
            if (v == null) return new Date();
            try {
                SimpleDateFormat f = new SimpleDateFormat("yyyyMMddHHmmss'Z'");
                f.setTimeZone(TimeZone.getTimeZone("UTC"));
                return f.parse(v);
            } catch (Exception e) {
                throw new Usage(name + " wants YYYYMMDDHHMMSSZ, got " + v);
            }
        }
    }

    static byte[] readFile(String path) throws Usage {
        try {
            return Files.readAllBytes(Paths.get(path));
        } catch (Exception e) {
            throw new Usage("cannot read " + path + ": " + e);
        }
    }

    /** DER bytes of the first PEM block if the file is PEM, else the file itself. */
    static byte[] der(String path) throws Usage {
        byte[] b = readFile(path);
        String head = new String(b, 0, Math.min(b.length, 4096), StandardCharsets.ISO_8859_1);
        if (!head.contains("-----BEGIN ")) return b;
        try (PemReader r = new PemReader(new StringReader(new String(b, StandardCharsets.ISO_8859_1)))) {
            PemObject o = r.readPemObject();
            if (o == null) throw new Usage("no PEM block in " + path);
            return o.getContent();
        } catch (Usage e) {
            throw e;
        } catch (Exception e) {
            throw new Usage("bad PEM in " + path + ": " + e.getMessage());
        }
    }

    static X509Certificate loadCert(String path) throws Usage {
        try {
            CertificateFactory cf = CertificateFactory.getInstance("X.509", BC);
            return (X509Certificate) cf.generateCertificate(new ByteArrayInputStream(der(path)));
        } catch (Usage e) {
            throw e;
        } catch (Exception e) {
            throw new Usage("cannot parse certificate " + path + ": " + e.getMessage());
        }
    }

    /** Every certificate in a file: concatenated PEM blocks, DER, or a PKCS#7 bundle. */
    static List<X509Certificate> loadCerts(String path) throws Usage {
        byte[] b = readFile(path);
        try {
            CertificateFactory cf = CertificateFactory.getInstance("X.509", BC);
            List<X509Certificate> r = new ArrayList<>();
            for (java.security.cert.Certificate c : cf.generateCertificates(new ByteArrayInputStream(b)))
                r.add((X509Certificate) c);
            if (r.isEmpty()) throw new Usage("no certificate in " + path);
            return r;
        } catch (Usage e) {
            throw e;
        } catch (Exception e) {
            throw new Usage("cannot parse certificates " + path + ": " + e.getMessage());
        }
    }

    static X509CertificateHolder loadCertHolder(String path) throws Usage {
        try {
            return new X509CertificateHolder(der(path));
        } catch (Usage e) {
            throw e;
        } catch (Exception e) {
            throw new Usage("cannot parse certificate " + path + ": " + e.getMessage());
        }
    }

    static X509CRL loadCrl(String path) throws Usage {
        try {
            CertificateFactory cf = CertificateFactory.getInstance("X.509", BC);
            return (X509CRL) cf.generateCRL(new ByteArrayInputStream(der(path)));
        } catch (Usage e) {
            throw e;
        } catch (Exception e) {
            throw new Usage("cannot parse CRL " + path + ": " + e.getMessage());
        }
    }

    /** A SubjectPublicKeyInfo (PEM or DER) or a certificate whose key is wanted. */
    static PublicKey loadPublicKey(String path) throws Usage {
        byte[] d = der(path);
        try {
            SubjectPublicKeyInfo spki;
            ASN1Sequence seq = ASN1Sequence.getInstance(d);
            if (seq.size() == 3 && seq.getObjectAt(0) instanceof ASN1Sequence
                    && ((ASN1Sequence) seq.getObjectAt(0)).size() > 4) {
                spki = new X509CertificateHolder(d).getSubjectPublicKeyInfo();  // a certificate
            } else {
                spki = SubjectPublicKeyInfo.getInstance(seq);
            }
            String alg = spki.getAlgorithm().getAlgorithm().equals(
                    org.bouncycastle.asn1.pkcs.PKCSObjectIdentifiers.rsaEncryption) ? "RSA" : "EC";
            return KeyFactory.getInstance(alg, BC).generatePublic(new X509EncodedKeySpec(spki.getEncoded("DER")));
        } catch (Exception e) {
            throw new Usage("cannot parse public key " + path + ": " + e.getMessage());
        }
    }

    /**
     * BC 1.72 names SignerInfo algorithms "digest WITH encryption"; GM/T 0010 signers put sm2-1
     * (1.2.156.10197.1.301.1) or the bare curve OID there, which BC would call "SM3WITH1.2...". Map
     * those, with an SM3 digest, to SM3WITHSM2 (default user ID); everything else is BC's default.
     */
    static final org.bouncycastle.cms.CMSSignatureAlgorithmNameGenerator GM_NAMES =
            new org.bouncycastle.cms.CMSSignatureAlgorithmNameGenerator() {
                final org.bouncycastle.cms.DefaultCMSSignatureAlgorithmNameGenerator dflt =
                        new org.bouncycastle.cms.DefaultCMSSignatureAlgorithmNameGenerator();

                public String getSignatureName(AlgorithmIdentifier digest, AlgorithmIdentifier enc) {
                    String e = enc.getAlgorithm().getId();
                    if (digest.getAlgorithm().getId().equals(SM3_OID)
                            && (e.equals(SM2_SIGN_OID) || e.equals(SM2_CURVE_OID) || e.equals(SM2_SM3_OID)))
                        return "SM3WITHSM2";
                    return dflt.getSignatureName(digest, enc);
                }
            };

    static org.bouncycastle.cms.SignerInformationVerifier signerVerifier(X509CertificateHolder c) throws Exception {
        return new org.bouncycastle.cms.SignerInformationVerifier(GM_NAMES,
                new org.bouncycastle.operator.DefaultSignatureAlgorithmIdentifierFinder(),
                new JcaContentVerifierProviderBuilder().setProvider(BC).build(c),
                new JcaDigestCalculatorProviderBuilder().setProvider(BC).build());
    }

    /** With --ca: the signer certificate must name the CA as issuer, be signed by it and be valid now. */
    static void checkIssuedBy(X509CertificateHolder c, String caFile) throws Exception {
        if (caFile == null) return;
        X509CertificateHolder ca = loadCertHolder(caFile);
        if (!c.getIssuer().equals(ca.getSubject()))
            throw new Fail("signer certificate issuer " + c.getIssuer() + " != CA subject " + ca.getSubject());
        if (!c.isSignatureValid(verifier(ca))) throw new Fail("signer certificate not signed by the CA");
        if (!c.isValidOn(new Date())) throw new Fail("signer certificate not valid now");
    }

    static ContentVerifierProvider verifier(X509CertificateHolder c) throws Exception {
        return new JcaContentVerifierProviderBuilder().setProvider(BC).build(c);
    }

    static String algName(AlgorithmIdentifier alg) {
        String oid = alg.getAlgorithm().getId();
        if (oid.equals(SM2_SM3_OID)) return "SM3withSM2";
        String n = new org.bouncycastle.operator.DefaultAlgorithmNameFinder().getAlgorithmName(alg);
        return n == null ? oid : n;
    }

    static String gt(Date d) {
        SimpleDateFormat f = new SimpleDateFormat("yyyyMMddHHmmss'Z'");
        f.setTimeZone(TimeZone.getTimeZone("UTC"));
        return f.format(d);
    }

    static byte[] hex(String s) throws Usage {
        try {
            return Hex.decode(s);
        } catch (Exception e) {
            throw new Usage("bad hex: " + s);
        }
    }

    static String printable(byte[] b) {
        for (byte x : b) if (x < 0x20 || x > 0x7e) return "hex:" + Hex.toHexString(b);
        return "\"" + new String(b, StandardCharsets.US_ASCII) + "\"";
    }

    static String oneLine(String s) {
        return s == null ? "(no message)" : s.replace('\r', ' ').replace('\n', ' ');
    }

    static String esc(String s) {
        if (s.endsWith("\n")) s = s.substring(0, s.length() - 1);
        if (s.endsWith("\r")) s = s.substring(0, s.length() - 1);
        return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r");
    }
}
