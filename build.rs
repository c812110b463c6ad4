//! Builds the C SAPI module in `ext/` against Debian's PHP 8.2 embed library
//! and generates Rust bindings for our own header, `ext/spindle.h`, only.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const PACKAGES: &str = "libphp8.2-embed php8.2-dev libclang-dev clang";

fn main() {
    println!("cargo:rerun-if-changed=ext/spindle.c");
    println!("cargo:rerun-if-changed=ext/spindle.h");
    println!("cargo:rerun-if-changed=ext/worker.c");
    println!("cargo:rerun-if-changed=ext/internal.h");
    println!("cargo:rerun-if-env-changed=PHP_CONFIG");

    let php_config = env::var("PHP_CONFIG").unwrap_or_else(|_| "php-config8.2".into());
    let includes = match Command::new(&php_config).arg("--includes").output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        _ => fail(&format!(
            "`{php_config} --includes` failed: the PHP 8.2 development files are missing"
        )),
    };
    let lib_dir = Command::new(&php_config)
        .arg("--prefix")
        .output()
        .ok()
        .map(|o| format!("{}/lib", String::from_utf8_lossy(&o.stdout).trim()))
        .unwrap_or_else(|| "/usr/lib".into());
    if !PathBuf::from(&lib_dir).join("libphp8.2.so").exists() {
        fail(&format!(
            "{lib_dir}/libphp8.2.so is missing: the PHP embed library is not installed"
        ));
    }

    let mut build = cc::Build::new();
    build
        .file("ext/spindle.c")
        .file("ext/worker.c")
        .include("ext")
        .define("_GNU_SOURCE", None)
        .define(
            "SPINDLE_VERSION",
            Some(format!("\"{}\"", env!("CARGO_PKG_VERSION")).as_str()),
        )
        .warnings(true)
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-fno-strict-aliasing");
    for inc in includes.split_whitespace() {
        if let Some(dir) = inc.strip_prefix("-I") {
            build.include(dir);
        }
    }
    build.compile("spindle_sapi");

    println!("cargo:rustc-link-search=native={lib_dir}");
    println!("cargo:rustc-link-lib=dylib=php8.2");

    let bindings = std::panic::catch_unwind(|| {
        bindgen::Builder::default()
            .header("ext/spindle.h")
            .allowlist_function("spindle_.*")
            .allowlist_type("spindle_.*")
            .allowlist_var("SPINDLE_.*")
            .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
            .generate()
    });
    let bindings = match bindings {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => fail(&format!("bindgen could not read ext/spindle.h: {e}")),
        Err(_) => fail("bindgen could not load libclang"),
    };
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("spindle_sys.rs");
    bindings.write_to_file(out).expect("write bindings");
}

fn fail(why: &str) -> ! {
    eprintln!("error: {why}.\nInstall the Debian packages: apt-get install {PACKAGES}");
    panic!("{why}; install: apt-get install {PACKAGES}");
}
