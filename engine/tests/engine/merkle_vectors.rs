//! The RFC 9162 Merkle tree against the published transparency-dev/merkle
//! test vectors (RFC 6962 hashing), and the proofs it generates against its
//! own independent verifiers.
//!
//! Every constant below is copied from github.com/transparency-dev/merkle,
//! never computed by the code under test:
//! - `testonly/constants.go`: `LeafInputs`, `NodeHashes` (level 0),
//!   `RootHashes`, `EmptyRootHash`;
//! - `proof/verify_test.go`: `inclusionProofs` (1-based leaf numbers),
//!   `consistencyProofs`, `sha256SomeHash`, and the corruption probes of
//!   `corruptInclusionProof` / `corruptConsistencyProof`, re-applied here;
//! - `testdata/inclusion/*/*.json` and `testdata/consistency/*/*.json`:
//!   files quoted verbatim (base64 hashes, `wantErr`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail by panicking"
)]

use warrant_engine::audit::merkle::{
    self, Hash, consistency_proof, empty_root, inclusion_proof, leaf_hash, root, root_at, verify_consistency,
    verify_inclusion,
};

// ---- testonly/constants.go -------------------------------------------------

/// `LeafInputs()`, hex.
const LEAF_INPUTS: [&str; 8] =
    ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];

/// `NodeHashes()[0]`: the leaf hashes of `LEAF_INPUTS`.
const LEAF_HASHES: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
];

/// `RootHashes()`: roots of the trees of sizes 0 to 8 over `LEAF_INPUTS`.
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

// ---- proof/verify_test.go --------------------------------------------------

/// `sha256SomeHash`.
const SOME_HASH: &str = "abacaba000000000000000000000000000000000000000000060061e00123456";

/// `inclusionProofs` (without the invalid `{0, 0, nil}` entry): leaf number
/// (1-based), tree size, audit path.
const INCLUSION_PROOFS: &[(u64, u64, &[&str])] = &[
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (3, 3, &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        2,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];

/// `consistencyProofs`: old size, new size, proof.
const CONSISTENCY_PROOFS: &[(u64, u64, &[&str])] = &[
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

// ---- testdata/ (verbatim) --------------------------------------------------

/// `testdata/inclusion/<dir>/<file>.json`.
const INCLUSION_FILES: &[(&str, &str)] = &[
    (
        "inclusion/0/happy-path.json",
        r#"{
  "leafIdx": 0,
  "treeSize": 1,
  "root": "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=",
  "leafHash": "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=",
  "proof": null,
  "desc": "happy path",
  "wantErr": false
}"#,
    ),
    (
        "inclusion/1/happy-path.json",
        r#"{"leafIdx":0,"treeSize":8,"root":"XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=","leafHash":"bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=","proof":["lqKW0iTyhcZ77pPDD4owkVfw2qNdxbh+QQt4YwoJz8c=","Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=","a0eq8p7jwq+a+Im8H7klTavTEXfxYjLdaqsDXKOb9uQ="],"desc":"happy path","wantErr":false}"#,
    ),
    (
        "inclusion/2/happy-path.json",
        r#"{
  "leafIdx": 5,
  "treeSize": 8,
  "root": "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=",
  "leafHash": "QnGia+DYqE8L1UyMMC58s6O10fpngKQLzOKHNHfatlg=",
  "proof": [
    "vBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms=",
    "yoVOoSjtBQtBs1/8G4e46yveRh6eO1WW7Oa51ZdaCuA=",
    "037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc="
  ],
  "desc": "happy path",
  "wantErr": false
}"#,
    ),
    (
        "inclusion/3/happy-path.json",
        r#"{"leafIdx":2,"treeSize":3,"root":"rra8/idLcKFPsGel5VeCZNsPqbUa9eC6FZFY8yngbnc=","leafHash":"ApjRIpBtz8EIkstTpzmS/FufST6kybrbJ7eRtBJ6f+c=","proof":["+sVCA+fMaWzw38tCySodnbr3CtnmIfS9jZhmLwDjwSU="],"desc":"happy path","wantErr":false}"#,
    ),
    (
        "inclusion/4/happy-path.json",
        r#"{"leafIdx":1,"treeSize":5,"root":"Tju7H3tHjc/nH7YxYxUZo7yhLJrvyhYSv85ME6hiZNQ=","leafHash":"lqKW0iTyhcZ77pPDD4owkVfw2qNdxbh+QQt4YwoJz8c=","proof":["bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=","Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=","vBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms="],"desc":"happy path","wantErr":false}"#,
    ),
    (
        "inclusion/1/modified-proof[0]-bit-3.json",
        r#"{
  "leafIdx": 0,
  "treeSize": 8,
  "root": "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=",
  "leafHash": "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=",
  "proof": [
    "nqKW0iTyhcZ77pPDD4owkVfw2qNdxbh+QQt4YwoJz8c=",
    "Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=",
    "a0eq8p7jwq+a+Im8H7klTavTEXfxYjLdaqsDXKOb9uQ="
  ],
  "desc": "modified proof[0] bit 3",
  "wantErr": true
}"#,
    ),
    (
        "inclusion/1/wrong-leaf.json",
        r#"{"leafIdx":0,"treeSize":8,"root":"XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=","leafHash":"V3JvbmdMZWFm","proof":["lqKW0iTyhcZ77pPDD4owkVfw2qNdxbh+QQt4YwoJz8c=","Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=","a0eq8p7jwq+a+Im8H7klTavTEXfxYjLdaqsDXKOb9uQ="],"desc":"wrong leaf","wantErr":true}"#,
    ),
    (
        "inclusion/1/leafIdx-+-1.json",
        r#"{
  "leafIdx": 1,
  "treeSize": 8,
  "root": "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=",
  "leafHash": "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=",
  "proof": [
    "lqKW0iTyhcZ77pPDD4owkVfw2qNdxbh+QQt4YwoJz8c=",
    "Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=",
    "a0eq8p7jwq+a+Im8H7klTavTEXfxYjLdaqsDXKOb9uQ="
  ],
  "desc": "leafIdx + 1",
  "wantErr": true
}"#,
    ),
    (
        "inclusion/1/treeSize-div-2.json",
        r#"{
  "leafIdx": 0,
  "treeSize": 4,
  "root": "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=",
  "leafHash": "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=",
  "proof": [
    "lqKW0iTyhcZ77pPDD4owkVfw2qNdxbh+QQt4YwoJz8c=",
    "Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=",
    "a0eq8p7jwq+a+Im8H7klTavTEXfxYjLdaqsDXKOb9uQ="
  ],
  "desc": "treeSize div 2",
  "wantErr": true
}"#,
    ),
];

/// `testdata/consistency/<dir>/<file>.json`.
const CONSISTENCY_FILES: &[(&str, &str)] = &[
    (
        "consistency/0/happy-path.json",
        r#"{
  "size1": 1,
  "size2": 1,
  "root1": "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=",
  "root2": "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=",
  "proof": null,
  "desc": "happy path",
  "wantErr": false
}"#,
    ),
    (
        "consistency/1/happy-path.json",
        r#"{
  "size1": 1,
  "size2": 8,
  "root1": "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=",
  "root2": "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=",
  "proof": [
    "lqKW0iTyhcZ77pPDD4owkVfw2qNdxbh+QQt4YwoJz8c=",
    "Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=",
    "a0eq8p7jwq+a+Im8H7klTavTEXfxYjLdaqsDXKOb9uQ="
  ],
  "desc": "happy path",
  "wantErr": false
}"#,
    ),
    (
        "consistency/2/happy-path.json",
        r#"{
  "size1": 6,
  "size2": 8,
  "root1": "duZ9rbzfHhDht03cYIq9L5jfsW+851J3tSMqEn8gh+8=",
  "root2": "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=",
  "proof": [
    "DrxdNDf74tsVi58Sah0RjjCBgQMdCpSfje3t68VY72o=",
    "yoVOoSjtBQtBs1/8G4e46yveRh6eO1WW7Oa51ZdaCuA=",
    "037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc="
  ],
  "desc": "happy path",
  "wantErr": false
}"#,
    ),
    (
        "consistency/3/happy-path.json",
        r#"{
  "size1": 2,
  "size2": 5,
  "root1": "+sVCA+fMaWzw38tCySodnbr3CtnmIfS9jZhmLwDjwSU=",
  "root2": "Tju7H3tHjc/nH7YxYxUZo7yhLJrvyhYSv85ME6hiZNQ=",
  "proof": [
    "Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=",
    "vBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms="
  ],
  "desc": "happy path",
  "wantErr": false
}"#,
    ),
    (
        "consistency/4/happy-path.json",
        r#"{
  "size1": 6,
  "size2": 7,
  "root1": "duZ9rbzfHhDht03cYIq9L5jfsW+851J3tSMqEn8gh+8=",
  "root2": "3bib5AOAnjJXUNPSY814kpwpQreUKjS3fhIslZSnTIw=",
  "proof": [
    "DrxdNDf74tsVi58Sah0RjjCBgQMdCpSfje3t68VY72o=",
    "sIaT7C5yFZcTBkHoIR5+7cy0wmQTlj7ubB4u0W/7Gl8=",
    "037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc="
  ],
  "desc": "happy path",
  "wantErr": false
}"#,
    ),
    (
        "consistency/1/modified-proof[0]-bit-4.json",
        r#"{
  "size1": 1,
  "size2": 8,
  "root1": "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=",
  "root2": "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=",
  "proof": [
    "hqKW0iTyhcZ77pPDD4owkVfw2qNdxbh+QQt4YwoJz8c=",
    "Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=",
    "a0eq8p7jwq+a+Im8H7klTavTEXfxYjLdaqsDXKOb9uQ="
  ],
  "desc": "modified proof[0] bit 4",
  "wantErr": true
}"#,
    ),
    (
        "consistency/1/swapped-roots.json",
        r#"{
  "size1": 1,
  "size2": 8,
  "root1": "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=",
  "root2": "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=",
  "proof": [
    "lqKW0iTyhcZ77pPDD4owkVfw2qNdxbh+QQt4YwoJz8c=",
    "Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=",
    "a0eq8p7jwq+a+Im8H7klTavTEXfxYjLdaqsDXKOb9uQ="
  ],
  "desc": "swapped roots",
  "wantErr": true
}"#,
    ),
    (
        "consistency/1/truncated-proof.json",
        r#"{
  "size1": 1,
  "size2": 8,
  "root1": "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=",
  "root2": "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=",
  "proof": [
    "lqKW0iTyhcZ77pPDD4owkVfw2qNdxbh+QQt4YwoJz8c=",
    "Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4="
  ],
  "desc": "truncated proof",
  "wantErr": true
}"#,
    ),
    (
        "consistency/1/size1-+-1.json",
        r#"{
  "size1": 2,
  "size2": 8,
  "root1": "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=",
  "root2": "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=",
  "proof": [
    "lqKW0iTyhcZ77pPDD4owkVfw2qNdxbh+QQt4YwoJz8c=",
    "Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=",
    "a0eq8p7jwq+a+Im8H7klTavTEXfxYjLdaqsDXKOb9uQ="
  ],
  "desc": "size1 + 1",
  "wantErr": true
}"#,
    ),
];

// ---- helpers -------------------------------------------------------------

fn h(hex_text: &str) -> Hash {
    hex::decode(hex_text).unwrap().try_into().unwrap()
}

fn hashes(list: &[&str]) -> Vec<Hash> {
    list.iter().map(|x| h(x)).collect()
}

fn published_leaves() -> Vec<Hash> {
    LEAF_INPUTS.iter().map(|input| leaf_hash(&hex::decode(input).unwrap())).collect()
}

/// Standard base64 with padding, as Go's `encoding/json` writes `[]byte`.
fn base64(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c).unwrap() as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// A base64 hash from a testdata file; `None` when it is not 32 bytes (such
/// a value cannot even be passed to the verifiers, which take `[u8; 32]`).
fn b64_hash(value: &serde_json::Value) -> Option<Hash> {
    base64(value.as_str().unwrap()).try_into().ok()
}

fn b64_proof(value: &serde_json::Value) -> Option<Vec<Hash>> {
    match value {
        serde_json::Value::Null => Some(Vec::new()),
        list => list.as_array().unwrap().iter().map(b64_hash).collect(),
    }
}

// ---- tests ---------------------------------------------------------------

#[test]
fn hashing_matches_rfc6962() {
    assert_eq!(hex::encode(empty_root()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_eq!(hex::encode(root(&[])), ROOTS[0]);
    assert_eq!(hex::encode(leaf_hash(b"")), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
    assert_eq!(published_leaves(), hashes(&LEAF_HASHES));
}

#[test]
fn roots_of_every_prefix_match() {
    let leaves = published_leaves();
    for (size, expected) in ROOTS.iter().enumerate() {
        assert_eq!(hex::encode(root(&leaves[..size])), *expected, "size {size}");
        assert_eq!(hex::encode(root_at(&leaves, size as u64).unwrap()), *expected, "size {size}");
    }
    assert!(root_at(&leaves, 9).is_err());
}

#[test]
fn the_base64_helper_agrees_with_the_hex_vectors() {
    assert_eq!(base64("bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0="), hex::decode(ROOTS[1]).unwrap());
    assert_eq!(base64("XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg="), hex::decode(ROOTS[8]).unwrap());
    assert_eq!(base64("V3JvbmdMZWFm"), b"WrongLeaf");
}

#[test]
fn published_inclusion_proofs_are_generated_and_verify() {
    let leaves = published_leaves();
    for &(leaf, size, proof) in INCLUSION_PROOFS {
        let index = leaf - 1;
        let proof = hashes(proof);
        assert_eq!(inclusion_proof(&leaves, index, size).unwrap(), proof, "leaf {leaf} of {size}");
        let root = h(ROOTS[size as usize]);
        verify_inclusion(&leaves[index as usize], index, size, &proof, &root)
            .unwrap_or_else(|e| panic!("leaf {leaf} of {size}: {e}"));
        for (desc, probe) in corrupt_inclusion(index, size, &proof, &root, &leaves[index as usize]) {
            assert!(probe.is_err(), "leaf {leaf} of {size}: {desc} must not verify");
        }
    }
}

/// `corruptInclusionProof` of `proof/verify_test.go`, re-applied.
fn corrupt_inclusion(
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
    leaf: &Hash,
) -> Vec<(String, Result<(), merkle::ProofError>)> {
    let some = h(SOME_HASH);
    let mut probes = vec![
        ("leafIndex - 1".to_owned(), index.checked_sub(1).map(|i| verify_inclusion(leaf, i, size, proof, root))),
        ("leafIndex + 1".to_owned(), Some(verify_inclusion(leaf, index + 1, size, proof, root))),
        ("leafIndex ^ 2".to_owned(), Some(verify_inclusion(leaf, index ^ 2, size, proof, root))),
        ("treeSize * 2".to_owned(), Some(verify_inclusion(leaf, index, size * 2, proof, root))),
        ("treeSize / 2".to_owned(), Some(verify_inclusion(leaf, index, size / 2, proof, root))),
        ("wrong leaf".to_owned(), Some(verify_inclusion(&leaf_hash(b"WrongLeaf"), index, size, proof, root))),
        ("empty root".to_owned(), Some(verify_inclusion(leaf, index, size, proof, &empty_root()))),
        ("random root".to_owned(), Some(verify_inclusion(leaf, index, size, proof, &some))),
        ("trailing root".to_owned(), Some(verify_inclusion(leaf, index, size, &[proof, &[*root]].concat(), root))),
        ("preceding root".to_owned(), Some(verify_inclusion(leaf, index, size, &[&[*root], proof].concat(), root))),
    ];
    for i in 0..proof.len() {
        let mut wrong = proof.to_vec();
        wrong[i][0] ^= 8;
        probes.push((format!("modified proof[{i}] bit 3"), Some(verify_inclusion(leaf, index, size, &wrong, root))));
    }
    if let Some((_, shorter)) = proof.split_last() {
        probes.push(("removed component".to_owned(), Some(verify_inclusion(leaf, index, size, shorter, root))));
    }
    if proof.len() > 1 {
        let inserted = [&[proof[0], some], &proof[1..]].concat();
        probes.push(("inserted component".to_owned(), Some(verify_inclusion(leaf, index, size, &inserted, root))));
    }
    // A probe that cannot be formed (index - 1 of leaf 0) is no probe.
    probes.into_iter().filter_map(|(d, r)| r.map(|r| (d, r))).collect()
}

#[test]
fn published_consistency_proofs_are_generated_and_verify() {
    let leaves = published_leaves();
    for &(old, new, proof) in CONSISTENCY_PROOFS {
        let proof = hashes(proof);
        assert_eq!(consistency_proof(&leaves, old, new).unwrap(), proof, "{old} -> {new}");
        let (old_root, new_root) = (h(ROOTS[old as usize]), h(ROOTS[new as usize]));
        verify_consistency(old, new, &old_root, &new_root, &proof).unwrap_or_else(|e| panic!("{old} -> {new}: {e}"));
        if proof.is_empty() {
            continue;
        }
        for (desc, probe) in corrupt_consistency(old, new, &old_root, &new_root, &proof) {
            assert!(probe.is_err(), "{old} -> {new}: {desc} must not verify");
        }
    }
}

/// `corruptConsistencyProof` of `proof/verify_test.go`, re-applied.
fn corrupt_consistency(
    old: u64,
    new: u64,
    r1: &Hash,
    r2: &Hash,
    proof: &[Hash],
) -> Vec<(String, Result<(), merkle::ProofError>)> {
    let wrong_root = leaf_hash(b"WrongRoot");
    let mut probes = vec![
        ("size1 - 1", verify_consistency(old - 1, new, r1, r2, proof)),
        ("size1 + 1", verify_consistency(old + 1, new, r1, r2, proof)),
        ("size1 ^ 2", verify_consistency(old ^ 2, new, r1, r2, proof)),
        ("size2 * 2", verify_consistency(old, new * 2, r1, r2, proof)),
        ("size2 / 2", verify_consistency(old, new / 2, r1, r2, proof)),
        ("wrong root1", verify_consistency(old, new, &wrong_root, r2, proof)),
        ("wrong root2", verify_consistency(old, new, r1, &wrong_root, proof)),
        ("swapped roots", verify_consistency(old, new, r2, r1, proof)),
        ("empty proof", verify_consistency(old, new, r1, r2, &[])),
        ("trailing root1", verify_consistency(old, new, r1, r2, &[proof, &[*r1]].concat())),
        ("trailing root2", verify_consistency(old, new, r1, r2, &[proof, &[*r2]].concat())),
        ("preceding root1", verify_consistency(old, new, r1, r2, &[&[*r1], proof].concat())),
        ("preceding root2", verify_consistency(old, new, r1, r2, &[&[*r2], proof].concat())),
        ("preceding proof[0]", verify_consistency(old, new, r1, r2, &[&[proof[0]], proof].concat())),
        ("truncated proof", verify_consistency(old, new, r1, r2, &proof[..proof.len() - 1])),
    ]
    .into_iter()
    .map(|(d, r)| (d.to_owned(), r))
    .collect::<Vec<_>>();
    for i in 0..proof.len() {
        let mut wrong = proof.to_vec();
        wrong[i][0] ^= 16;
        probes.push((format!("modified proof[{i}] bit 4"), verify_consistency(old, new, r1, r2, &wrong)));
    }
    probes
}

#[test]
fn consistency_edge_cases_of_verify_test_go() {
    // `TestVerifyConsistency`'s table; its 12-byte "don't care" roots become
    // two distinct 32-byte values, the verifiers taking only [u8; 32].
    let (root1, root2) = (leaf_hash(b"don't care 1"), leaf_hash(b"don't care 2"));
    let empty = empty_root();
    let proof2 = [empty];
    // Old size, new size, old root, new root, proof, wants an error.
    type Case<'a> = (u64, u64, Hash, Hash, &'a [Hash], bool);
    let cases: [Case<'_>; 13] = [
        (0, 0, root1, root2, &[], true),
        (1, 1, root1, root2, &[], true),
        (0, 0, root1, root1, &[], false),
        (0, 1, root1, root2, &[], false),
        (1, 1, root2, root2, &[], false),
        (1, 0, root1, root2, &[], true),
        (2, 1, root1, root2, &[], true),
        (1, 2, root1, root2, &[], true),
        (0, 0, empty, root2, &[], true),
        (1, 1, empty, root2, &[], true),
        (0, 0, empty, empty, &proof2, true),
        (0, 1, empty, empty, &proof2, true),
        (1, 1, empty, empty, &proof2, true),
    ];
    for (i, (old, new, r1, r2, proof, want_err)) in cases.into_iter().enumerate() {
        assert_eq!(verify_consistency(old, new, &r1, &r2, proof).is_err(), want_err, "case {i}: {old} -> {new}");
    }
}

#[test]
fn inclusion_edge_cases_of_verify_test_go() {
    // `TestVerifyInclusionSingleEntry` and `TestVerifyInclusion`'s probes.
    let hash = leaf_hash(b"data");
    verify_inclusion(&hash, 0, 1, &[], &hash).unwrap();
    assert!(verify_inclusion(&hash, 0, 1, &[], &empty_root()).is_err());
    let some = h(SOME_HASH);
    for (index, size) in [(0, 0), (0, 1), (1, 0), (2, 1)] {
        assert!(verify_inclusion(&some, index, size, &[], &empty_root()).is_err(), "{index} of {size}");
    }
}

#[test]
fn testdata_inclusion_files() {
    for (name, text) in INCLUSION_FILES {
        let case: serde_json::Value = serde_json::from_str(text).unwrap();
        let want_err = case["wantErr"].as_bool().unwrap();
        let (index, size) = (case["leafIdx"].as_u64().unwrap(), case["treeSize"].as_u64().unwrap());
        let verified = match (b64_hash(&case["leafHash"]), b64_hash(&case["root"]), b64_proof(&case["proof"])) {
            (Some(leaf), Some(root), Some(proof)) => verify_inclusion(&leaf, index, size, &proof, &root).is_ok(),
            _ => false,
        };
        assert_eq!(verified, !want_err, "{name}: {}", case["desc"]);
    }
}

#[test]
fn testdata_consistency_files() {
    for (name, text) in CONSISTENCY_FILES {
        let case: serde_json::Value = serde_json::from_str(text).unwrap();
        let want_err = case["wantErr"].as_bool().unwrap();
        let (old, new) = (case["size1"].as_u64().unwrap(), case["size2"].as_u64().unwrap());
        let verified = match (b64_hash(&case["root1"]), b64_hash(&case["root2"]), b64_proof(&case["proof"])) {
            (Some(r1), Some(r2), Some(proof)) => verify_consistency(old, new, &r1, &r2, &proof).is_ok(),
            _ => false,
        };
        assert_eq!(verified, !want_err, "{name}: {}", case["desc"]);
    }
}

/// Distinct leaves for the property tests.
fn synthetic_leaves(n: u64) -> Vec<Hash> {
    (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
}

#[test]
fn every_generated_inclusion_proof_verifies_up_to_64_leaves() {
    let leaves = synthetic_leaves(64);
    for n in 1..=64u64 {
        let root_n = root_at(&leaves, n).unwrap();
        for i in 0..n {
            let proof = inclusion_proof(&leaves, i, n).unwrap();
            let leaf = &leaves[i as usize];
            verify_inclusion(leaf, i, n, &proof, &root_n).unwrap_or_else(|e| panic!("leaf {i} of {n}: {e}"));
            // The same proof proves nothing for a neighbour, or a deeper tree.
            if i + 1 < n {
                assert!(verify_inclusion(&leaves[i as usize + 1], i + 1, n, &proof, &root_n).is_err());
            }
            assert!(verify_inclusion(leaf, i, n * 2, &proof, &root_n).is_err(), "leaf {i} of {n} as of {}", n * 2);
        }
        assert!(inclusion_proof(&leaves, n, n).is_err());
    }
    assert!(inclusion_proof(&leaves, 0, 65).is_err());
}

#[test]
fn every_generated_consistency_proof_verifies_up_to_64_leaves() {
    let leaves = synthetic_leaves(64);
    let roots: Vec<Hash> = (0..=64).map(|n| root_at(&leaves, n).unwrap()).collect();
    for n in 0..=64u64 {
        for m in 0..=n {
            let proof = consistency_proof(&leaves, m, n).unwrap();
            let (root_m, root_n) = (&roots[m as usize], &roots[n as usize]);
            verify_consistency(m, n, root_m, root_n, &proof).unwrap_or_else(|e| panic!("{m} -> {n}: {e}"));
            if 0 < m && m < n {
                // A rewritten old tree (its last leaf changed) is caught.
                let mut rewritten = leaves[..n as usize].to_vec();
                rewritten[m as usize - 1] = leaf_hash(b"rewritten");
                assert!(verify_consistency(m, n, &root(&rewritten[..m as usize]), root_n, &proof).is_err());
                assert!(verify_consistency(m, n, root_m, &root(&rewritten), &proof).is_err());
            }
        }
    }
    assert!(consistency_proof(&leaves, 5, 4).is_err());
    assert!(consistency_proof(&leaves, 1, 65).is_err());
}
