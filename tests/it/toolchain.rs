//! Keeps `rust-version` in `Cargo.toml` true: a locked dependency that needs a newer Rust than
//! it says makes a build on that older Rust fail with an error about the dependency, long after
//! the user chose their toolchain from the manifest.
//!
//! `cargo metadata --locked` gives each package's own `rust-version` and the resolved graph.
//! The graph is filtered to the platforms orderstore builds on (it is Unix-only: its shutdown
//! listens for SIGTERM), because an unfiltered graph also holds dependencies that no build
//! compiles, such as `loom`'s behind `cfg(loom)`.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

/// The targets whose dependencies count: Linux and macOS, on x86-64 and ARM.
const BUILD_PLATFORMS: [&str; 4] = [
    "x86_64-unknown-linux-gnu",
    "aarch64-unknown-linux-gnu",
    "x86_64-apple-darwin",
    "aarch64-apple-darwin",
];

/// A Rust version such as `1.89` or `1.88.0`, compared component by component as numbers, so
/// that 1.89 is newer than 1.9 and 1.88 equals 1.88.0.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct RustVersion {
    major: u64,
    minor: u64,
    patch: u64,
}

impl RustVersion {
    fn parse(text: &str) -> Option<RustVersion> {
        let mut components = text.trim().split('.');
        let major = components.next()?.parse().ok()?;
        let minor = components
            .next()
            .map_or(Some(0), |minor| minor.parse().ok())?;
        let patch = components
            .next()
            .map_or(Some(0), |patch| patch.parse().ok())?;
        if components.next().is_some() {
            return None;
        }
        Some(RustVersion {
            major,
            minor,
            patch,
        })
    }
}

impl std::fmt::Display for RustVersion {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A package of the resolved graph that declares a `rust-version`.
#[derive(Debug)]
struct PackageNeed {
    name: String,
    version: String,
    rust_version: RustVersion,
}

/// What the test compares: orderstore's declared `rust-version` and every package it builds
/// that declares one.
#[derive(Debug)]
struct ToolchainNeeds {
    declared: RustVersion,
    dependencies: Vec<PackageNeed>,
}

/// The project root, where `Cargo.toml` and `Cargo.lock` are.
fn project_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The cargo that runs the tests (it sets `CARGO`), or the one on `PATH`.
fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"))
}

/// Runs `cargo metadata` once for all tests of this file.
fn toolchain_needs() -> &'static ToolchainNeeds {
    static NEEDS: OnceLock<ToolchainNeeds> = OnceLock::new();
    NEEDS.get_or_init(|| toolchain_needs_from(&locked_metadata()))
}

/// `cargo metadata --locked` for the build platforms; `--locked` fails when `Cargo.lock` is
/// not what `Cargo.toml` resolves to, since the versions checked must be the ones built.
fn locked_metadata() -> Value {
    let cargo = cargo();
    let mut command = Command::new(&cargo);
    command
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--manifest-path",
        ])
        .arg(project_root().join("Cargo.toml"));
    for platform in BUILD_PLATFORMS {
        command.args(["--filter-platform", platform]);
    }
    let output = command.output().unwrap_or_else(|error| {
        panic!(
            "cannot run {} metadata: {error}",
            Path::new(&cargo).display()
        )
    });
    assert!(
        output.status.success(),
        "cargo metadata --locked failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("cargo metadata printed invalid JSON: {error}"))
}

/// orderstore's `rust-version` and that of every package reachable from it in the resolved
/// graph. The graph holds the workspace member's normal, build and dev dependencies, and only
/// the normal and build dependencies of the others: exactly what its targets compile.
fn toolchain_needs_from(metadata: &Value) -> ToolchainNeeds {
    let packages: HashMap<&str, &Value> = metadata["packages"]
        .as_array()
        .unwrap_or_else(|| panic!("cargo metadata lists no packages"))
        .iter()
        .filter_map(|package| Some((package["id"].as_str()?, package)))
        .collect();
    let root = metadata["resolve"]["root"]
        .as_str()
        .unwrap_or_else(|| panic!("cargo metadata names no root package"));
    let root_package = packages
        .get(root)
        .unwrap_or_else(|| panic!("cargo metadata does not describe its root {root}"));
    let declared = root_package["rust_version"]
        .as_str()
        .unwrap_or_else(|| panic!("Cargo.toml declares no rust-version"));
    let declared = RustVersion::parse(declared)
        .unwrap_or_else(|| panic!("Cargo.toml's rust-version {declared:?} is not a version"));

    let dependencies_of: HashMap<&str, Vec<&str>> = metadata["resolve"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("cargo metadata has no resolved graph"))
        .iter()
        .filter_map(|node| {
            let dependencies = node["deps"]
                .as_array()?
                .iter()
                .filter_map(|dependency| dependency["pkg"].as_str())
                .collect();
            Some((node["id"].as_str()?, dependencies))
        })
        .collect();
    let mut reached: HashSet<&str> = HashSet::new();
    let mut waiting = vec![root];
    while let Some(id) = waiting.pop() {
        if !reached.insert(id) {
            continue;
        }
        waiting.extend(dependencies_of.get(id).into_iter().flatten().copied());
    }
    reached.remove(root);

    let mut dependencies: Vec<PackageNeed> = reached
        .iter()
        .filter_map(|id| {
            let package = packages.get(id)?;
            let text = package["rust_version"].as_str()?;
            let name = package["name"].as_str().unwrap_or(id).to_owned();
            let rust_version = RustVersion::parse(text).unwrap_or_else(|| {
                panic!("{name} declares rust-version {text:?}, which is not a version")
            });
            Some(PackageNeed {
                name,
                version: package["version"].as_str().unwrap_or_default().to_owned(),
                rust_version,
            })
        })
        .collect();
    dependencies.sort_by(|left, right| {
        (&right.rust_version, &left.name).cmp(&(&left.rust_version, &right.name))
    });
    ToolchainNeeds {
        declared,
        dependencies,
    }
}

#[test]
fn rust_versions_compare_as_numbers() {
    let version = |text| {
        RustVersion::parse(text).unwrap_or_else(|| panic!("{text:?} must parse as a version"))
    };
    assert!(version("1.89") > version("1.9"));
    assert!(version("1.100") > version("1.99.9"));
    assert_eq!(version("1.88"), version("1.88.0"));
    assert!(version("1.88.1") > version("1.88"));
    assert_eq!(RustVersion::parse("1.x"), None);
    assert_eq!(RustVersion::parse("1.2.3.4"), None);
}

#[test]
fn no_locked_dependency_needs_a_newer_rust_than_cargo_toml_says() {
    let needs = toolchain_needs();
    assert!(
        !needs.dependencies.is_empty(),
        "no dependency declares a rust-version; the graph was not read"
    );
    let too_new: Vec<String> = needs
        .dependencies
        .iter()
        .filter(|need| need.rust_version > needs.declared)
        .map(|need| format!("{} {} needs {}", need.name, need.version, need.rust_version))
        .collect();
    assert!(
        too_new.is_empty(),
        "Cargo.toml says rust-version = {}, but locked dependencies need newer: {}",
        needs.declared,
        too_new.join(", ")
    );
}

/// The image is built with the Rust its `FROM` names; a pinned tag older than `rust-version`
/// could not build the locked dependencies. A tag without a minor version (`1-bookworm`,
/// `latest`) follows the newest stable release.
#[test]
fn the_dockerfile_builds_with_at_least_the_declared_rust() {
    let dockerfile = std::fs::read_to_string(project_root().join("Dockerfile"))
        .unwrap_or_else(|error| panic!("cannot read the Dockerfile: {error}"));
    let rust_images: Vec<&str> = dockerfile
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            if !words.next()?.eq_ignore_ascii_case("FROM") {
                return None;
            }
            words.find(|word| !word.starts_with("--"))
        })
        .filter(|image| image.starts_with("rust:") || *image == "rust")
        .collect();
    assert!(
        !rust_images.is_empty(),
        "the Dockerfile builds from no official rust image"
    );
    let declared = &toolchain_needs().declared;
    for image in rust_images {
        let tag = image.strip_prefix("rust:").unwrap_or("latest");
        let version = tag.split('-').next().unwrap_or_default();
        if !version.contains('.') {
            // 1, 1-bookworm, latest, bookworm, slim: the newest stable release.
            continue;
        }
        let version = RustVersion::parse(version)
            .unwrap_or_else(|| panic!("the Dockerfile's {image} names no Rust version"));
        assert!(
            version >= *declared,
            "the Dockerfile builds with {image}, older than rust-version {declared}"
        );
    }
}
