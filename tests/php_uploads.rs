//! Uploads: multipart bodies of several MiB reach PHP through a memfd, with
//! real temporary files that PHP removes after the request.

mod support;

use reqwest::blocking::multipart::{Form, Part};
use serde_json::Value;
use support::{client, Server};

fn md5_hex(data: &[u8]) -> String {
    format!("{:x}", md5::compute(data))
}

#[test]
fn multi_mib_uploads_arrive_intact_and_temp_files_are_removed() {
    let s = Server::start(&["-d", "upload_max_filesize=32M", "-d", "post_max_size=64M"]);
    let big: Vec<u8> = (0..6_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let small = b"hello upload".to_vec();
    let form = Form::new()
        .text("title", "my files")
        .part(
            "big",
            Part::bytes(big.clone())
                .file_name("big.bin")
                .mime_str("application/octet-stream")
                .unwrap(),
        )
        .part(
            "small",
            Part::bytes(small.clone())
                .file_name("small.txt")
                .mime_str("text/plain")
                .unwrap(),
        );
    let r = client()
        .post(s.url("/upload.php?move=big"))
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = serde_json::from_str(&r.text().unwrap()).unwrap();
    assert_eq!(v["post"]["title"], "my files");
    let f = &v["files"]["big"];
    assert_eq!(f["name"], "big.bin");
    assert_eq!(f["error"], 0);
    assert_eq!(f["size"], 6_000_000);
    assert_eq!(f["is_uploaded_file"], true);
    assert_eq!(f["md5"], md5_hex(&big));
    assert_eq!(f["moved"], true, "move_uploaded_file() works");
    assert_eq!(f["moved_md5"], md5_hex(&big));
    let sm = &v["files"]["small"];
    assert_eq!(sm["size"], small.len());
    assert_eq!(sm["md5"], md5_hex(&small));
    // PHP deletes its upload temp files at the end of the request.
    let tmp = sm["tmp_name"].as_str().unwrap();
    assert!(!tmp.is_empty());
    assert!(
        !std::path::Path::new(tmp).exists(),
        "{tmp} should be gone after the request"
    );
}

#[test]
fn php_limits_still_apply_to_uploads() {
    // upload_max_filesize is PHP's own: the file is refused with PHP's error
    // code, the request still succeeds.
    let s = Server::start(&["-d", "upload_max_filesize=1M", "-d", "post_max_size=16M"]);
    let form = Form::new().part("f", Part::bytes(vec![7u8; 2 << 20]).file_name("f.bin"));
    let r = client()
        .post(s.url("/upload.php"))
        .multipart(form)
        .send()
        .unwrap();
    let v: Value = serde_json::from_str(&r.text().unwrap()).unwrap();
    assert_eq!(v["files"]["f"]["error"], 1, "UPLOAD_ERR_INI_SIZE");
}
