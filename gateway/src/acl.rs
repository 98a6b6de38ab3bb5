//! S3 access control lists: the grants a bucket or an object version carries, the canned ACLs
//! and `x-amz-grant-*` headers that set them, and what they allow (`access.rs` asks them last,
//! after a bucket's policy and its owner's rights). Which ones apply is the bucket's object
//! ownership: under `BucketOwnerEnforced` (every new bucket's, as on S3 since 2023) ACLs are
//! disabled — the bucket owner owns every object and only ACLs saying exactly that are
//! accepted; under the other settings ACLs are enabled and an object is owned by its writer
//! (`ObjectWriter`) or, when written with `bucket-owner-full-control`, by the bucket owner
//! (`BucketOwnerPreferred`).

use http::HeaderMap;
use s3s::dto::{self, AccessControlPolicy};
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};
use serde::{Deserialize, Serialize};

use crate::index::records::{BucketRecord, PublicAccessBlock};
use crate::owner::{ROOT_ID, ROOT_NAME, bucket_owner_id, is_canonical_id, s3_owner};

/// The group of everybody, anonymous callers included.
pub const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
/// The group of every caller with a valid signature.
pub const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";
/// Most grants one ACL holds (S3's limit).
const MAX_GRANTS: usize = 100;

/// What a grant allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Permission {
    /// Everything below.
    FullControl,
    /// List a bucket; read an object.
    Read,
    /// Write and delete objects in a bucket.
    Write,
    /// Read the ACL.
    ReadAcp,
    /// Change the ACL.
    WriteAcp,
}

impl Permission {
    const ALL: [(Permission, &'static str); 5] = [
        (Permission::FullControl, dto::Permission::FULL_CONTROL),
        (Permission::Read, dto::Permission::READ),
        (Permission::Write, dto::Permission::WRITE),
        (Permission::ReadAcp, dto::Permission::READ_ACP),
        (Permission::WriteAcp, dto::Permission::WRITE_ACP),
    ];

    fn name(self) -> &'static str {
        Self::ALL.iter().find(|(p, _)| *p == self).map_or("", |(_, name)| name)
    }

    fn parse(name: &str) -> S3Result<Self> {
        Self::ALL
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(p, _)| *p)
            .ok_or_else(|| s3_error!(MalformedACLError, "Unknown permission {name}"))
    }
}

/// Whom a grant is to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Grantee {
    /// An owner, by canonical id.
    User(String),
    /// Everybody.
    AllUsers,
    /// Every signed caller.
    AuthenticatedUsers,
}

impl Grantee {
    fn public(&self) -> bool {
        matches!(self, Grantee::AllUsers | Grantee::AuthenticatedUsers)
    }

    fn group(uri: &str) -> S3Result<Self> {
        match uri {
            ALL_USERS => Ok(Grantee::AllUsers),
            AUTHENTICATED_USERS => Ok(Grantee::AuthenticatedUsers),
            _ => Err(s3_error!(InvalidArgument, "Invalid group uri: Cairn knows AllUsers and AuthenticatedUsers")),
        }
    }

    fn user(id: &str) -> S3Result<Self> {
        if is_canonical_id(id) {
            Ok(Grantee::User(id.to_string()))
        } else {
            Err(s3_error!(InvalidArgument, "Invalid id"))
        }
    }
}

/// One grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclGrant {
    /// To whom.
    pub grantee: Grantee,
    /// What.
    pub permission: Permission,
}

/// A bucket's or an object version's ACL: its owner and grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acl {
    /// The canonical id of the resource's owner.
    pub owner: String,
    /// In the order given.
    pub grants: Vec<AclGrant>,
}

impl Acl {
    /// `owner`'s full control, and nothing else: S3's `private`.
    pub fn private(owner: &str) -> Self {
        Acl { owner: owner.to_string(), grants: vec![grant(Grantee::User(owner.to_string()), Permission::FullControl)] }
    }

    /// Whether it grants anything to AllUsers or AuthenticatedUsers.
    pub fn is_public(&self) -> bool {
        self.grants.iter().any(|g| g.grantee.public())
    }

    /// Whether it lets `caller` (a canonical id; `None`: anonymous) do what `permission`
    /// needs. Grants to the groups count only unless `ignore_public`.
    pub fn allows(&self, caller: Option<&str>, permission: Permission, ignore_public: bool) -> bool {
        self.grants.iter().any(|g| {
            let to_caller = match &g.grantee {
                Grantee::User(id) => caller == Some(id.as_str()),
                Grantee::AllUsers => !ignore_public,
                Grantee::AuthenticatedUsers => !ignore_public && caller.is_some(),
            };
            to_caller && (g.permission == permission || g.permission == Permission::FullControl)
        })
    }

    /// As S3 answers it (GetBucketAcl, GetObjectAcl).
    pub fn to_s3(&self) -> (dto::Owner, dto::Grants) {
        let name = |id: &str| (id == ROOT_ID).then(|| ROOT_NAME.to_string());
        let owner = s3_owner(&self.owner);
        let grants = self
            .grants
            .iter()
            .map(|g| {
                let (type_, id, uri) = match &g.grantee {
                    Grantee::User(id) => (dto::Type::CANONICAL_USER, Some(id.clone()), None),
                    Grantee::AllUsers => (dto::Type::GROUP, None, Some(ALL_USERS.to_string())),
                    Grantee::AuthenticatedUsers => (dto::Type::GROUP, None, Some(AUTHENTICATED_USERS.to_string())),
                };
                let grantee = dto::Grantee {
                    display_name: id.as_deref().and_then(name),
                    email_address: None,
                    id,
                    type_: dto::Type::from_static(type_),
                    uri,
                };
                dto::Grant {
                    grantee: Some(grantee),
                    permission: Some(dto::Permission::from_static(g.permission.name())),
                }
            })
            .collect();
        (owner, grants)
    }
}

fn grant(grantee: Grantee, permission: Permission) -> AclGrant {
    AclGrant { grantee, permission }
}

/// S3's canned ACLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canned {
    /// The owner's full control.
    Private,
    /// And everybody reads.
    PublicRead,
    /// And everybody reads and writes (a bucket's objects).
    PublicReadWrite,
    /// And every signed caller reads.
    AuthenticatedRead,
    /// An object's: and its bucket's owner reads.
    BucketOwnerRead,
    /// An object's: and its bucket's owner has full control.
    BucketOwnerFullControl,
}

impl Canned {
    fn parse(name: &str) -> S3Result<Self> {
        Ok(match name {
            "private" => Canned::Private,
            "public-read" => Canned::PublicRead,
            "public-read-write" => Canned::PublicReadWrite,
            "authenticated-read" => Canned::AuthenticatedRead,
            "bucket-owner-read" => Canned::BucketOwnerRead,
            "bucket-owner-full-control" => Canned::BucketOwnerFullControl,
            "aws-exec-read" | "log-delivery-write" => {
                return Err(s3_error!(NotImplemented, "Cairn does not implement the canned ACL {name}"));
            }
            _ => return Err(s3_error!(InvalidArgument, "Invalid canned ACL {name}")),
        })
    }

    /// The ACL it makes for a resource owned by `owner` in a bucket owned by `bucket_owner`.
    fn expand(self, owner: &str, bucket_owner: &str) -> Acl {
        let mut acl = Acl::private(owner);
        let mut add = |grantee, permission| {
            let new = grant(grantee, permission);
            if !acl.grants.contains(&new) {
                acl.grants.push(new);
            }
        };
        match self {
            Canned::Private => {}
            Canned::PublicRead => add(Grantee::AllUsers, Permission::Read),
            Canned::PublicReadWrite => {
                add(Grantee::AllUsers, Permission::Read);
                add(Grantee::AllUsers, Permission::Write);
            }
            Canned::AuthenticatedRead => add(Grantee::AuthenticatedUsers, Permission::Read),
            Canned::BucketOwnerRead if owner != bucket_owner => {
                add(Grantee::User(bucket_owner.to_string()), Permission::Read)
            }
            Canned::BucketOwnerFullControl if owner != bucket_owner => {
                add(Grantee::User(bucket_owner.to_string()), Permission::FullControl)
            }
            Canned::BucketOwnerRead | Canned::BucketOwnerFullControl => {}
        }
        acl
    }
}

/// An ACL as a request asks for it: a canned one, or grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    /// `x-amz-acl`.
    Canned(Canned),
    /// `x-amz-grant-*` headers, or an `AccessControlPolicy` body.
    Grants(Vec<AclGrant>),
}

impl Requested {
    /// The ACL a request asks for in its headers (`x-amz-acl`, `x-amz-grant-*`), if any.
    pub fn from_headers(headers: &HeaderMap) -> S3Result<Option<Self>> {
        const GRANT_HEADERS: [(&str, Permission); 5] = [
            ("x-amz-grant-full-control", Permission::FullControl),
            ("x-amz-grant-read", Permission::Read),
            ("x-amz-grant-write", Permission::Write),
            ("x-amz-grant-read-acp", Permission::ReadAcp),
            ("x-amz-grant-write-acp", Permission::WriteAcp),
        ];
        let canned = headers.get("x-amz-acl").map(text).transpose()?.map(Canned::parse).transpose()?;
        let mut grants = Vec::new();
        for (name, permission) in GRANT_HEADERS {
            for value in headers.get_all(name) {
                for grantee in text(value)?.split(',').map(str::trim).filter(|g| !g.is_empty()) {
                    grants.push(grant(header_grantee(grantee)?, permission));
                }
            }
        }
        match (canned, grants.is_empty()) {
            (Some(_), false) => {
                Err(s3_error!(InvalidRequest, "Specifying both Canned ACLs and Header Grants is not allowed"))
            }
            (Some(canned), true) => Ok(Some(Requested::Canned(canned))),
            (None, false) => Ok(Some(Requested::Grants(limited(grants)?))),
            (None, true) => Ok(None),
        }
    }

    /// The grants of an `AccessControlPolicy` body (PutBucketAcl, PutObjectAcl); an owner it
    /// names must be `owner`, since an ACL cannot change who owns what.
    pub fn from_policy(policy: &AccessControlPolicy, owner: &str) -> S3Result<Self> {
        if let Some(named) = policy.owner.as_ref().and_then(|o| o.id.as_deref())
            && named != owner
        {
            return Err(s3_error!(AccessDenied, "An ACL cannot change the owner"));
        }
        let grants = policy
            .grants
            .iter()
            .flatten()
            .map(|g| {
                let grantee = g.grantee.as_ref().ok_or_else(malformed)?;
                let permission = Permission::parse(g.permission.as_ref().ok_or_else(malformed)?.as_str())?;
                let grantee = match grantee.type_.as_str() {
                    dto::Type::CANONICAL_USER => Grantee::user(grantee.id.as_deref().ok_or_else(malformed)?)?,
                    dto::Type::GROUP => Grantee::group(grantee.uri.as_deref().ok_or_else(malformed)?)?,
                    dto::Type::AMAZON_CUSTOMER_BY_EMAIL => return Err(by_email()),
                    _ => return Err(malformed()),
                };
                Ok(grant(grantee, permission))
            })
            .collect::<S3Result<Vec<_>>>()?;
        Ok(Requested::Grants(limited(grants)?))
    }

    /// The ACL it makes for a resource owned by `owner` in a bucket owned by `bucket_owner`.
    fn acl(&self, owner: &str, bucket_owner: &str) -> Acl {
        match self {
            Requested::Canned(canned) => canned.expand(owner, bucket_owner),
            Requested::Grants(grants) => Acl { owner: owner.to_string(), grants: grants.clone() },
        }
    }
}

fn text(value: &http::HeaderValue) -> S3Result<&str> {
    value.to_str().map_err(|_| s3_error!(InvalidArgument, "An ACL header is not text")).map(str::trim)
}

fn malformed() -> S3Error {
    s3_error!(
        MalformedACLError,
        "The XML you provided was not well-formed or did not validate against our published schema"
    )
}

fn by_email() -> S3Error {
    let mut err = S3Error::with_message(
        S3ErrorCode::Custom("UnresolvableGrantByEmailAddress".into()),
        "Cairn does not resolve grants by email address: grant to a canonical id".to_string(),
    );
    // s3s knows no status for a code of its own: S3 answers this one with 400.
    err.set_status_code(http::StatusCode::BAD_REQUEST);
    err
}

fn limited(grants: Vec<AclGrant>) -> S3Result<Vec<AclGrant>> {
    if grants.len() > MAX_GRANTS {
        return Err(s3_error!(MalformedACLError, "An ACL holds at most {MAX_GRANTS} grants"));
    }
    Ok(grants)
}

/// One grantee of an `x-amz-grant-*` header: `id="…"`, `uri="…"` or `emailAddress="…"`.
fn header_grantee(text: &str) -> S3Result<Grantee> {
    let (kind, value) = text.split_once('=').ok_or_else(|| s3_error!(InvalidArgument, "Invalid grant {text}"))?;
    let value = value.trim().trim_matches('"');
    match kind.trim() {
        "id" => Grantee::user(value),
        "uri" => Grantee::group(value),
        "emailAddress" => Err(by_email()),
        _ => Err(s3_error!(InvalidArgument, "Invalid grant {text}")),
    }
}

/// Who owns the objects of a bucket, and whether ACLs apply (S3's object ownership).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ownership {
    /// ACLs disabled: the bucket owner owns every object.
    #[default]
    BucketOwnerEnforced,
    /// ACLs enabled; objects written with `bucket-owner-full-control` are the bucket owner's.
    BucketOwnerPreferred,
    /// ACLs enabled; objects are their writers'.
    ObjectWriter,
    /// Ownership controls deleted: as `ObjectWriter`, and GetBucketOwnershipControls finds none.
    Unset,
}

impl Ownership {
    /// S3's name for it (none for `Unset`).
    pub fn name(self) -> Option<&'static str> {
        match self {
            Ownership::BucketOwnerEnforced => Some(dto::ObjectOwnership::BUCKET_OWNER_ENFORCED),
            Ownership::BucketOwnerPreferred => Some(dto::ObjectOwnership::BUCKET_OWNER_PREFERRED),
            Ownership::ObjectWriter => Some(dto::ObjectOwnership::OBJECT_WRITER),
            Ownership::Unset => None,
        }
    }

    /// The setting S3 names so.
    pub fn parse(name: &str) -> S3Result<Self> {
        [Ownership::BucketOwnerEnforced, Ownership::BucketOwnerPreferred, Ownership::ObjectWriter]
            .into_iter()
            .find(|o| o.name() == Some(name))
            .ok_or_else(|| s3_error!(InvalidArgument, "Invalid ObjectOwnership {name}"))
    }

    /// Whether ACLs decide anything in the bucket.
    pub fn acls_enabled(self) -> bool {
        self != Ownership::BucketOwnerEnforced
    }
}

fn acls_disabled() -> S3Error {
    s3_error!(AccessControlListNotSupported, "The bucket does not allow ACLs")
}

/// S3's error for an ACL that BucketOwnerEnforced ownership does not allow on a bucket.
pub fn acl_against_ownership() -> S3Error {
    s3_error!(
        InvalidBucketAclWithObjectOwnership,
        "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting"
    )
}

/// Refuses a public ACL where the bucket's public access block says `BlockPublicAcls`.
fn check_blocked(acl: &Acl, block: Option<&PublicAccessBlock>) -> S3Result<()> {
    if acl.is_public() && block.is_some_and(|b| b.block_public_acls) {
        return Err(s3_error!(AccessDenied, "Access Denied: the bucket's public access block refuses public ACLs"));
    }
    Ok(())
}

/// The ACL a new bucket gets from its CreateBucket (`None`: private), with its ownership
/// (`x-amz-object-ownership`, else BucketOwnerEnforced): ACLs other than private need an
/// ownership that enables them, as on S3.
pub fn for_new_bucket(
    requested: Option<&Requested>,
    ownership: Option<Ownership>,
    owner: &str,
) -> S3Result<(Option<Acl>, Ownership)> {
    let ownership = ownership.unwrap_or_default();
    let acl = requested.map(|r| r.acl(owner, owner)).filter(|acl| *acl != Acl::private(owner));
    if acl.is_some() && !ownership.acls_enabled() {
        return Err(acl_against_ownership());
    }
    Ok((acl, ownership))
}

/// The ACL a PutBucketAcl sets on `bucket` (`None`: private).
pub fn for_bucket(requested: &Requested, bucket: &BucketRecord) -> S3Result<Option<Acl>> {
    let owner = bucket_owner_id(bucket);
    let acl = requested.acl(owner, owner);
    if acl == Acl::private(owner) {
        return Ok(None);
    }
    if !bucket.ownership.acls_enabled() {
        return Err(acls_disabled());
    }
    check_blocked(&acl, bucket.public_access_block.as_ref())?;
    Ok(Some(acl))
}

/// The ACL of an object version `writer` writes into `bucket` (`None`: the bucket owner's and
/// private, what most objects have). `owner` keeps the version's owner for a PutObjectAcl
/// (`None` for a new version).
pub fn for_object(
    requested: Option<&Requested>,
    bucket: &BucketRecord,
    writer: &str,
    owner: Option<&str>,
) -> S3Result<Option<Acl>> {
    let bucket_owner = bucket_owner_id(bucket);
    let owner = match (owner, bucket.ownership) {
        (Some(owner), _) => owner,
        (None, Ownership::BucketOwnerEnforced) => bucket_owner,
        (None, Ownership::BucketOwnerPreferred)
            if requested == Some(&Requested::Canned(Canned::BucketOwnerFullControl)) =>
        {
            bucket_owner
        }
        (None, _) => writer,
    };
    let acl = requested.map_or_else(|| Acl::private(owner), |r| r.acl(owner, bucket_owner));
    if !bucket.ownership.acls_enabled() {
        // Only what the bucket owner has anyway: its full control.
        let enforced =
            matches!(requested, None | Some(Requested::Canned(Canned::Private | Canned::BucketOwnerFullControl)))
                || acl == Acl::private(bucket_owner);
        return if enforced { Ok(None) } else { Err(acls_disabled()) };
    }
    check_blocked(&acl, bucket.public_access_block.as_ref())?;
    Ok((acl != Acl::private(bucket_owner)).then_some(acl))
}

/// The ACL S3 shows for a bucket or an object version whose stored ACL is `stored`: under
/// BucketOwnerEnforced, always the bucket owner's full control.
pub fn effective(stored: Option<&Acl>, bucket: &BucketRecord) -> Acl {
    match stored {
        Some(acl) if bucket.ownership.acls_enabled() => acl.clone(),
        _ => Acl::private(bucket_owner_id(bucket)),
    }
}

/// The owner of an object version whose stored ACL is `stored`, as listings show it.
pub fn object_owner(stored: Option<&Acl>, bucket: &BucketRecord) -> dto::Owner {
    match stored {
        Some(acl) if bucket.ownership.acls_enabled() => s3_owner(&acl.owner),
        _ => s3_owner(bucket_owner_id(bucket)),
    }
}

/// What an operation needs of an ACL: a permission on the bucket, or on the object version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclNeed {
    /// On the bucket's ACL.
    Bucket(Permission),
    /// On the object version's ACL.
    Object(Permission),
}

/// What `operation` needs of an ACL, if an ACL can allow it at all (the bucket's other
/// settings are its owner's alone).
pub fn need_of(operation: &str) -> Option<AclNeed> {
    use Permission::*;
    Some(match operation {
        "ListObjects" | "ListObjectsV2" | "ListObjectVersions" | "ListMultipartUploads" | "HeadBucket" => {
            AclNeed::Bucket(Read)
        }
        "PutObject"
        | "DeleteObject"
        | "DeleteObjects"
        | "CopyObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload"
        | "AbortMultipartUpload"
        | "ListParts" => AclNeed::Bucket(Write),
        "GetBucketAcl" => AclNeed::Bucket(ReadAcp),
        "PutBucketAcl" => AclNeed::Bucket(WriteAcp),
        "GetObject" | "HeadObject" => AclNeed::Object(Read),
        "GetObjectAcl" => AclNeed::Object(ReadAcp),
        "PutObjectAcl" => AclNeed::Object(WriteAcp),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (http::HeaderName::from_static(k), http::HeaderValue::from_static(v))).collect()
    }

    fn code(err: S3Error) -> String {
        err.code().as_str().to_string()
    }

    #[test]
    fn canned_acls_expand_as_on_s3() {
        let public = Canned::PublicRead.expand(A, A);
        assert_eq!(public.grants.len(), 2);
        assert!(public.allows(None, Permission::Read, false));
        assert!(!public.allows(None, Permission::Read, true), "ignored public grants");
        assert!(!public.allows(None, Permission::Write, false));
        assert!(public.allows(Some(A), Permission::WriteAcp, false), "the owner's full control");
        let authenticated = Canned::AuthenticatedRead.expand(A, A);
        assert!(
            authenticated.allows(Some(B), Permission::Read, false)
                && !authenticated.allows(None, Permission::Read, false)
        );
        assert!(Canned::PublicReadWrite.expand(A, A).allows(None, Permission::Write, false));
        let read = Canned::BucketOwnerRead.expand(B, A);
        assert!(read.allows(Some(A), Permission::Read, false) && !read.allows(Some(A), Permission::ReadAcp, false));
        assert!(Canned::BucketOwnerFullControl.expand(B, A).allows(Some(A), Permission::WriteAcp, false));
        assert_eq!(Canned::BucketOwnerFullControl.expand(A, A), Acl::private(A), "no grant twice");
        assert!(!Acl::private(A).is_public() && public.is_public());
    }

    #[test]
    fn headers_ask_for_canned_acls_or_grants() {
        assert_eq!(Requested::from_headers(&headers(&[])).unwrap(), None);
        assert_eq!(
            Requested::from_headers(&headers(&[("x-amz-acl", "public-read")])).unwrap(),
            Some(Requested::Canned(Canned::PublicRead))
        );
        let two = headers(&[
            (
                "x-amz-grant-read",
                "uri=\"http://acs.amazonaws.com/groups/global/AllUsers\", id=\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
            ),
            ("x-amz-grant-write-acp", "id=bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"),
        ]);
        let Some(Requested::Grants(grants)) = Requested::from_headers(&two).unwrap() else { panic!() };
        assert_eq!(
            grants,
            [
                grant(Grantee::AllUsers, Permission::Read),
                grant(Grantee::User(A.into()), Permission::Read),
                grant(Grantee::User(B.into()), Permission::WriteAcp)
            ]
        );
        let refused = |pairs| code(Requested::from_headers(&headers(pairs)).unwrap_err());
        assert_eq!(
            refused(&[
                ("x-amz-acl", "private"),
                ("x-amz-grant-read", "uri=\"http://acs.amazonaws.com/groups/global/AllUsers\"")
            ]),
            "InvalidRequest"
        );
        assert_eq!(refused(&[("x-amz-grant-read", "emailAddress=\"a@b.c\"")]), "UnresolvableGrantByEmailAddress");
        assert_eq!(refused(&[("x-amz-grant-read", "id=\"short\"")]), "InvalidArgument");
        assert_eq!(
            refused(&[("x-amz-grant-read", "uri=\"http://acs.amazonaws.com/groups/s3/LogDelivery\"")]),
            "InvalidArgument"
        );
        assert_eq!(refused(&[("x-amz-acl", "log-delivery-write")]), "NotImplemented");
        assert_eq!(refused(&[("x-amz-acl", "everyone")]), "InvalidArgument");
    }

    #[test]
    fn ownership_decides_whether_acls_apply_and_who_owns() {
        let enforced = BucketRecord { owner: A.into(), ..Default::default() };
        let public = Requested::Canned(Canned::PublicRead);
        assert_eq!(code(for_object(Some(&public), &enforced, B, None).unwrap_err()), "AccessControlListNotSupported");
        let full = Requested::Canned(Canned::BucketOwnerFullControl);
        assert_eq!(for_object(Some(&full), &enforced, B, None).unwrap(), None, "the bucket owner owns it");
        assert_eq!(for_object(None, &enforced, B, None).unwrap(), None);
        assert_eq!(code(for_new_bucket(Some(&public), None, A).unwrap_err()), "InvalidBucketAclWithObjectOwnership");
        assert_eq!(
            for_new_bucket(Some(&Requested::Canned(Canned::Private)), None, A).unwrap(),
            (None, Ownership::BucketOwnerEnforced)
        );

        let writer = BucketRecord { owner: A.into(), ownership: Ownership::ObjectWriter, ..Default::default() };
        assert_eq!(for_object(None, &writer, B, None).unwrap(), Some(Acl::private(B)), "the writer owns it");
        assert_eq!(for_object(None, &writer, A, None).unwrap(), None);
        let preferred = BucketRecord { ownership: Ownership::BucketOwnerPreferred, ..writer.clone() };
        assert_eq!(for_object(Some(&full), &preferred, B, None).unwrap(), None);
        assert_eq!(for_object(Some(&full), &writer, B, None).unwrap().unwrap().owner, B);

        let blocked = BucketRecord {
            public_access_block: Some(PublicAccessBlock { block_public_acls: true, ..Default::default() }),
            ..writer.clone()
        };
        assert_eq!(code(for_object(Some(&public), &blocked, A, None).unwrap_err()), "AccessDenied");
        assert_eq!(code(for_bucket(&public, &blocked).unwrap_err()), "AccessDenied");
        assert!(for_bucket(&public, &writer).unwrap().unwrap().is_public());
        assert_eq!(effective(Some(&Canned::PublicRead.expand(A, A)), &enforced), Acl::private(A));
    }
}
