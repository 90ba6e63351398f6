//! Throwaway certificates for the TLS tests, made with the openssl command: a test CA, server
//! certificates it signs for chosen names, and a second CA that signs nothing the servers use.

use super::*;

/// A folder of PEM files: `ca.crt`, `other-ca.crt`, and per [`TestCerts::server`] call a
/// certificate and key.
pub struct TestCerts {
    /// The folder.
    pub dir: PathBuf,
}

/// A server's certificate and key.
pub struct ServerCert {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, PKCS#8).
    pub key: PathBuf,
}

fn openssl(args: &[&str], dir: &Path, what: &str) {
    let mut command = Command::new(find_program("openssl", &[]));
    command.args(args).current_dir(dir);
    run(command, what);
}

impl TestCerts {
    /// A new folder with a test CA and an unrelated second CA.
    pub fn new() -> TestCerts {
        let dir = std::env::temp_dir().join(unique_name("orderstore-certs"));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", dir.display()));
        watchdog(&format!("rm -rf {}", dir.display()));
        let certs = TestCerts { dir };
        certs.make_ca("ca", "orderstore test CA");
        certs.make_ca("other-ca", "a CA nobody uses");
        certs
    }

    fn make_ca(&self, name: &str, subject: &str) {
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={subject}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.crt"),
            ],
            &self.dir,
            "openssl: making a test CA",
        );
    }

    /// The test CA's certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// The unrelated CA's certificate.
    pub fn other_ca(&self) -> PathBuf {
        self.dir.join("other-ca.crt")
    }

    /// A certificate signed by the test CA for `names` (DNS names or IP addresses).
    pub fn server(&self, file_stem: &str, names: &[&str]) -> ServerCert {
        let alt_names: Vec<String> = names
            .iter()
            .map(|name| match name.parse::<std::net::IpAddr>() {
                Ok(_) => format!("IP:{name}"),
                Err(_) => format!("DNS:{name}"),
            })
            .collect();
        let extensions = self.dir.join(format!("{file_stem}.ext"));
        std::fs::write(
            &extensions,
            format!(
                "subjectAltName={}\nbasicConstraints=CA:FALSE\n\
                 keyUsage=critical,digitalSignature,keyEncipherment\n\
                 extendedKeyUsage=serverAuth,clientAuth\n",
                alt_names.join(",")
            ),
        )
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", extensions.display()));
        let key = format!("{file_stem}.key");
        let csr = format!("{file_stem}.csr");
        let cert = format!("{file_stem}.crt");
        openssl(
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                &format!("/CN={}", names[0]),
                "-keyout",
                &key,
                "-out",
                &csr,
            ],
            &self.dir,
            "openssl: a server key and request",
        );
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &format!("{file_stem}.ext"),
                "-out",
                &cert,
            ],
            &self.dir,
            "openssl: signing a server certificate",
        );
        ServerCert {
            cert: self.dir.join(cert),
            key: self.dir.join(key),
        }
    }
}
