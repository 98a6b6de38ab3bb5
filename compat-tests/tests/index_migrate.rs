//! `cairn-admin index migrate` moves a gateway's index from RocksDB to PostgreSQL: a gateway on
//! the copy serves exactly what the one on RocksDB served (listings, heads, bodies, tags, an
//! unfinished upload, access keys, a deleted key staying deleted), and the index moves back. It
//! refuses a source a running gateway holds (RocksDB's lock, a PostgreSQL index's beating gateway), the same index
//! on both sides and a target that is not empty, naming the table; a password in the URL is
//! never printed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Tag, Tagging};
use compat_tests::postgres::TestPostgres;
use compat_tests::{TestCluster, test_bytes};

/// What a client can see of the cluster, in a comparable form.
async fn observe(s3: &aws_sdk_s3::Client) -> Vec<String> {
    let mut seen = Vec::new();
    let buckets = s3.list_buckets().send().await.unwrap();
    for bucket in buckets.buckets() {
        let name = bucket.name().unwrap();
        seen.push(format!("bucket {name} created {:?}", bucket.creation_date()));
        // The whole listing, in small pages, so continuation tokens are exercised too.
        let mut token = None;
        loop {
            let page = s3
                .list_objects_v2()
                .bucket(name)
                .max_keys(7)
                .set_continuation_token(token.take())
                .send()
                .await
                .unwrap();
            for object in page.contents() {
                let key = object.key().unwrap();
                seen.push(format!("list {name}/{key} size={:?} etag={:?}", object.size(), object.e_tag()));
                let head = s3.head_object().bucket(name).key(key).send().await.unwrap();
                let got = s3.get_object().bucket(name).key(key).send().await.unwrap();
                let body = got.body.collect().await.unwrap().into_bytes();
                let tags = s3.get_object_tagging().bucket(name).key(key).send().await.unwrap();
                let tags: Vec<(String, String)> =
                    tags.tag_set().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect();
                let mut meta: Vec<_> = head.metadata().into_iter().flatten().collect();
                meta.sort();
                seen.push(format!(
                    "head {name}/{key} size={:?} etag={:?} modified={:?} type={:?} meta={meta:?} tags={tags:?} body={}",
                    head.content_length(),
                    head.e_tag(),
                    head.last_modified(),
                    head.content_type(),
                    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body)),
                ));
            }
            match page.next_continuation_token() {
                Some(next) => token = Some(next.to_string()),
                None => break,
            }
        }
        let grouped = s3.list_objects_v2().bucket(name).delimiter("/").send().await.unwrap();
        let keys: Vec<_> = grouped.contents().iter().map(|o| o.key().unwrap().to_string()).collect();
        let prefixes: Vec<_> = grouped.common_prefixes().iter().map(|p| p.prefix().unwrap().to_string()).collect();
        seen.push(format!("delimited {name}: {keys:?} {prefixes:?}"));
        let uploads = s3.list_multipart_uploads().bucket(name).send().await.unwrap();
        for upload in uploads.uploads() {
            let (key, id) = (upload.key().unwrap(), upload.upload_id().unwrap());
            let parts = s3.list_parts().bucket(name).key(key).upload_id(id).send().await.unwrap();
            let parts: Vec<_> =
                parts.parts().iter().map(|p| (p.part_number(), p.size(), p.e_tag().map(str::to_string))).collect();
            seen.push(format!("upload {name}/{key} {id} parts={parts:?}"));
        }
    }
    seen
}

fn stderr_and_stdout(output: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_index_moves_from_rocksdb_to_postgresql_and_serves_the_same() {
    let Some(postgres) = TestPostgres::start("index_migrate") else { return };
    // The test server trusts loopback, so the password is not checked: it is here to be hidden.
    let url = postgres.create_database().replace("postgres@", "postgres:m1grate-s3cret@");
    let mut cluster = TestCluster::start(2, 2);
    let s3 = cluster.client();
    for bucket in ["photos", "logs", "empty"] {
        s3.create_bucket().bucket(bucket).send().await.unwrap();
    }
    let mut keys = Vec::new();
    for i in 0..12 {
        keys.push(format!("dir/{i:02}.jpg"));
        keys.push(format!("dir/sub/{i}"));
    }
    keys.extend(["top", "ünïcødé/日本語 key", "a b+c", "dir/", "zz/"].map(str::to_string));
    for (i, key) in keys.iter().enumerate() {
        let data = test_bytes(100 + i * 313, i as u64);
        s3.put_object()
            .bucket("photos")
            .key(key)
            .content_type(if i % 2 == 0 { "image/jpeg" } else { "text/plain" })
            .metadata("n", i.to_string())
            .body(data.into())
            .send()
            .await
            .unwrap();
    }
    for i in 0..5 {
        s3.put_object().bucket("logs").key(format!("2026/12/{i}")).body(vec![i; 10].into()).send().await.unwrap();
    }
    s3.put_object_tagging()
        .bucket("photos")
        .key("top")
        .tagging(
            Tagging::builder().tag_set(Tag::builder().key("colour").value("grün").build().unwrap()).build().unwrap(),
        )
        .send()
        .await
        .unwrap();
    s3.put_object().bucket("photos").key("doomed").body(b"bye".to_vec().into()).send().await.unwrap();
    s3.delete_object().bucket("photos").key("doomed").send().await.unwrap();

    let part = test_bytes(5 * 1024 * 1024, 77);
    let upload = s3.create_multipart_upload().bucket("photos").key("big").send().await.unwrap();
    let id = upload.upload_id().unwrap();
    let mut parts = Vec::new();
    for number in 1..=2 {
        let body = ByteStream::from(if number == 1 { part.clone() } else { b"tail".to_vec() });
        let done = s3
            .upload_part()
            .bucket("photos")
            .key("big")
            .upload_id(id)
            .part_number(number)
            .body(body)
            .send()
            .await
            .unwrap();
        parts.push(CompletedPart::builder().part_number(number).e_tag(done.e_tag().unwrap()).build());
    }
    s3.complete_multipart_upload()
        .bucket("photos")
        .key("big")
        .upload_id(id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await
        .unwrap();
    // An upload left open moves too, with its part.
    let open = s3.create_multipart_upload().bucket("logs").key("unfinished").send().await.unwrap();
    s3.upload_part()
        .bucket("logs")
        .key("unfinished")
        .upload_id(open.upload_id().unwrap())
        .part_number(1)
        .body(b"first part".to_vec().into())
        .send()
        .await
        .unwrap();
    cluster.admin_ok(&["key", "create", "migrated-key"]);
    let key_list = cluster.admin_ok(&["key", "list"]);

    let before = observe(&s3).await;
    assert!(before.iter().any(|l| l.starts_with("head photos/big size=Some(5242884)")), "{before:#?}");
    assert!(before.iter().any(|l| l.starts_with("upload logs/unfinished") && l.contains("Some(10)")), "{before:#?}");
    let rocksdb = format!("rocksdb:{}", cluster.db_dir().display());
    let migrate = |cluster: &TestCluster, from: &str, to: &str| {
        let output = cluster.admin(&["index", "migrate", "--from", from, "--to", to]);
        let said = stderr_and_stdout(&output);
        assert!(!said.contains("m1grate-s3cret"), "the password was printed:\n{said}");
        (output.status.success(), said)
    };

    // The gateway holds its RocksDB directory: refused, saying why, and nothing is written.
    let (ok, said) = migrate(&cluster, &rocksdb, &url);
    assert!(!ok && said.contains("in use by another process") && said.contains("gateway"), "{said}");
    let tables = postgres.psql(&url, "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'cairn_%'");
    assert_eq!(tables, "0", "the target was touched");

    cluster.stop_gateway();
    let (ok, said) = migrate(&cluster, &rocksdb, &rocksdb);
    assert!(!ok && said.contains("the same index"), "{said}");
    let (ok, said) = migrate(&cluster, &rocksdb, &url);
    assert!(ok, "{said}");
    eprintln!("cairn-admin index migrate said:\n{said}");
    assert!(said.contains("in 14 tables") && said.contains("verified equal"), "{said}");
    assert!(said.contains("postgres:***@"), "the target is named, without its password:\n{said}");
    for table in ["buckets", "objects", "uploads", "parts", "keys", "meta"] {
        assert!(said.lines().any(|l| l.starts_with(table) && l.ends_with(": equal")), "{table}:\n{said}");
    }
    let objects = postgres.psql(&url, "SELECT count(*) FROM cairn_objects");
    assert!(objects.parse::<u64>().unwrap() > keys.len() as u64 + 5, "objects, logs, big and a tombstone: {objects}");

    // Into the now full database again: refused, naming a table, and nothing merged.
    let (ok, said) = migrate(&cluster, &rocksdb, &url);
    assert!(!ok && said.contains("not empty") && said.contains("table buckets"), "{said}");
    assert_eq!(postgres.psql(&url, "SELECT count(*) FROM cairn_objects"), objects);

    cluster.gateway_args = vec!["--index".into(), url.clone()];
    cluster.start_gateway();
    let s3 = cluster.client();
    let after = observe(&s3).await;
    assert_eq!(after, before);
    let gone = s3.head_object().bucket("photos").key("doomed").send().await.unwrap_err();
    assert_eq!(gone.raw_response().unwrap().status().as_u16(), 404);
    assert_eq!(cluster.admin_ok(&["key", "list"]), key_list);
    // The copy is a working index: it takes new writes.
    s3.put_object().bucket("photos").key("after").body(b"new".to_vec().into()).send().await.unwrap();
    let got = s3.get_object().bucket("photos").key("after").send().await.unwrap();
    assert_eq!(&got.body.collect().await.unwrap().into_bytes()[..], b"new");

    // A gateway serves the PostgreSQL index now: migrating from it is refused (it beats).
    let back_dir = cluster.root.path().join("back");
    let back = format!("rocksdb:{}", back_dir.display());
    let (ok, said) = migrate(&cluster, &url, &back);
    assert!(!ok && said.contains("a gateway") && said.contains("stop every gateway first"), "{said}");
    assert!(!back_dir.exists(), "the target was made though the source was refused");
    // Stopped cleanly, it unregisters, and the index moves back to RocksDB.
    cluster.stop_gateway();
    let (ok, said) = migrate(&cluster, &url, &back);
    assert!(ok && said.contains("verified equal"), "{said}");
}
