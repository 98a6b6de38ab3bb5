//! The S3 front: one file per area, and a thin dispatch from the `s3s::S3` trait.
//!
//! ```text
//! bucket.rs      ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation,
//!                Get/PutBucketVersioning
//! object.rs      PutObject, GetObject, HeadObject, GetObjectAttributes
//! multipart.rs   Create/Complete/AbortMultipartUpload, UploadPart, ListParts,
//!                ListMultipartUploads
//! copy.rs        CopyObject, UploadPartCopy
//! delete.rs      DeleteObject, DeleteObjects
//! list.rs        ListObjects (v1), ListObjectsV2, ListObjectVersions
//! tagging.rs     Get/Put/DeleteObjectTagging
//! lock.rs        Put/GetObjectLockConfiguration, Put/GetObjectRetention,
//!                Put/GetObjectLegalHold, and the lock a write gets
//! lifecycle.rs   Put/Get/DeleteBucketLifecycleConfiguration
//! post.rs        POST Object (browser form uploads), served before s3s (see `server.rs`)
//! policy.rs      Put/Get/DeleteBucketPolicy, GetBucketPolicyStatus, Put/Get/DeletePublicAccessBlock
//! settings.rs    Get/Put/DeleteBucketTagging, Get/Put/DeleteBucketCors, Get/PutBucketAcl, Get/PutObjectAcl, and the
//!                bucket settings Cairn does not have, answered as S3 answers an unset one
//! write.rs       what every write shares: storing a body, tags, metadata, conditions
//! conditions.rs  If-Match / If-None-Match / If-(Un)Modified-Since, copy-source variants
//! ```
//! Every other S3 operation answers `NotImplemented` (the `s3s::S3` trait's default).

mod acl;
mod bucket;
mod conditions;
mod copy;
mod delete;
mod lifecycle;
mod list;
mod lock;
mod multipart;
mod object;
mod policy;
mod post;
mod settings;
mod tagging;
mod write;

use std::sync::Arc;

use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result};

use crate::cluster::Cluster;
use crate::index::records::ObjectEntry;
use crate::index::{Index, WriteCondition};
use crate::volume_client::VolumeClient;

pub use post::{PostAuth, serve as serve_post_object};

/// The S3 service: shared state every handler uses.
#[derive(Debug, Clone)]
pub struct Gateway {
    pub(crate) index: Arc<Index>,
    pub(crate) cluster: Cluster,
    pub(crate) volumes: VolumeClient,
    pub(crate) replicas: usize,
    pub(crate) write_quorum: usize,
    pub(crate) region: String,
    /// Blobs being written, hidden from GC until committed.
    pub(crate) in_flight: crate::in_flight::InFlight,
    /// Where reads report damaged copies.
    pub(crate) damage: crate::repair::DamageReports,
}

impl Gateway {
    /// Where a new blob of `bucket`/`key` may go: volumes that are up, in the key's ring
    /// order, `replicas` of them and as many spares (fewer if fewer are up; the write takes
    /// the first `replicas` and checks its quorum).
    pub(crate) fn place(&self, bucket: &str, key: &str) -> Vec<(crate::index::records::Replica, String)> {
        self.cluster.place(bucket, key, self.replicas * 2, self.volumes.health())
    }

    /// Commits `entry` as the key's version (see `Index::commit_object`) and logs its blob on
    /// its volumes before the client hears of it. Returns the version id to answer with
    /// (`x-amz-version-id`; none in a bucket that never had versioning).
    pub(crate) async fn commit_object(
        &self,
        bucket: &str,
        key: &str,
        entry: ObjectEntry,
        condition: Option<WriteCondition>,
    ) -> crate::Result<Option<String>> {
        let blob = entry.main_blob().clone();
        let (bucket, key) = (bucket.to_string(), key.to_string());
        let order = self.index.commit_object(&bucket, &key, &entry, condition.as_ref()).await?;
        crate::commit_log::log(&self.index, &self.cluster, &self.volumes, &blob, order).await;
        Ok(order.version_id())
    }

    /// Completes a multipart upload (see `Index::complete_upload`) and logs its manifest.
    pub(crate) async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        entry: ObjectEntry,
        condition: Option<WriteCondition>,
    ) -> crate::Result<Option<String>> {
        let blob = entry.main_blob().clone();
        let (b, k, u) = (bucket.to_string(), key.to_string(), upload_id.to_string());
        let order = self.index.complete_upload(&b, &k, &u, &entry, condition.as_ref()).await?;
        crate::commit_log::log(&self.index, &self.cluster, &self.volumes, &blob, order).await;
        Ok(order.version_id())
    }
}

#[async_trait::async_trait]
impl S3 for Gateway {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn list_buckets(&self, req: S3Request<ListBucketsInput>) -> S3Result<S3Response<ListBucketsOutput>> {
        bucket::list_buckets(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn create_bucket(&self, req: S3Request<CreateBucketInput>) -> S3Result<S3Response<CreateBucketOutput>> {
        bucket::create_bucket(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        bucket::head_bucket(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn delete_bucket(&self, req: S3Request<DeleteBucketInput>) -> S3Result<S3Response<DeleteBucketOutput>> {
        bucket::delete_bucket(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        bucket::get_bucket_location(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        object::put_object(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        object::get_object(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        object::head_object(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
        delete::delete_object(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn delete_objects(&self, req: S3Request<DeleteObjectsInput>) -> S3Result<S3Response<DeleteObjectsOutput>> {
        delete::delete_objects(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        bucket::get_bucket_versioning(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        bucket::put_bucket_versioning(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        object::get_object_attributes(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        multipart::create_multipart_upload(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key, part = req.input.part_number))]
    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        multipart::upload_part(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key, part = req.input.part_number))]
    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        copy::upload_part_copy(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        multipart::complete_multipart_upload(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        multipart::abort_multipart_upload(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        multipart::list_parts(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        multipart::list_multipart_uploads(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        copy::copy_object(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        tagging::get_object_tagging(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        tagging::put_object_tagging(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        tagging::delete_object_tagging(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        list::list_object_versions(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn list_objects(&self, req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
        list::list_objects(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
        list::list_objects_v2(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn put_object_lock_configuration(
        &self,
        req: S3Request<PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
        lock::put_object_lock_configuration(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn get_object_lock_configuration(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        lock::get_object_lock_configuration(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn put_object_retention(
        &self,
        req: S3Request<PutObjectRetentionInput>,
    ) -> S3Result<S3Response<PutObjectRetentionOutput>> {
        lock::put_object_retention(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn get_object_retention(
        &self,
        req: S3Request<GetObjectRetentionInput>,
    ) -> S3Result<S3Response<GetObjectRetentionOutput>> {
        lock::get_object_retention(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn put_object_legal_hold(
        &self,
        req: S3Request<PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
        lock::put_object_legal_hold(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn get_object_legal_hold(
        &self,
        req: S3Request<GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
        lock::get_object_legal_hold(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        lifecycle::put_bucket_lifecycle_configuration(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        lifecycle::get_bucket_lifecycle_configuration(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        lifecycle::delete_bucket_lifecycle(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        settings::get_bucket_tagging(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn put_bucket_tagging(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        settings::put_bucket_tagging(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        settings::delete_bucket_tagging(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_acl(&self, req: S3Request<GetBucketAclInput>) -> S3Result<S3Response<GetBucketAclOutput>> {
        acl::get_bucket_acl(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn put_bucket_acl(&self, req: S3Request<PutBucketAclInput>) -> S3Result<S3Response<PutBucketAclOutput>> {
        acl::put_bucket_acl(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_ownership_controls(
        &self,
        req: S3Request<GetBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
        acl::get_bucket_ownership_controls(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_encryption(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        settings::get_bucket_encryption(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_website(
        &self,
        req: S3Request<GetBucketWebsiteInput>,
    ) -> S3Result<S3Response<GetBucketWebsiteOutput>> {
        settings::get_bucket_website(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_replication(
        &self,
        req: S3Request<GetBucketReplicationInput>,
    ) -> S3Result<S3Response<GetBucketReplicationOutput>> {
        settings::get_bucket_replication(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        policy::get_bucket_policy(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_policy_status(
        &self,
        req: S3Request<GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
        policy::get_bucket_policy_status(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_cors(&self, req: S3Request<GetBucketCorsInput>) -> S3Result<S3Response<GetBucketCorsOutput>> {
        settings::get_bucket_cors(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn get_public_access_block(
        &self,
        req: S3Request<GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
        policy::get_public_access_block(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_logging(
        &self,
        req: S3Request<GetBucketLoggingInput>,
    ) -> S3Result<S3Response<GetBucketLoggingOutput>> {
        settings::get_bucket_logging(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_request_payment(
        &self,
        req: S3Request<GetBucketRequestPaymentInput>,
    ) -> S3Result<S3Response<GetBucketRequestPaymentOutput>> {
        settings::get_bucket_request_payment(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_accelerate_configuration(
        &self,
        req: S3Request<GetBucketAccelerateConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketAccelerateConfigurationOutput>> {
        settings::get_bucket_accelerate_configuration(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_notification_configuration(
        &self,
        req: S3Request<GetBucketNotificationConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketNotificationConfigurationOutput>> {
        settings::get_bucket_notification_configuration(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn get_object_acl(&self, req: S3Request<GetObjectAclInput>) -> S3Result<S3Response<GetObjectAclOutput>> {
        acl::get_object_acl(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn put_object_acl(&self, req: S3Request<PutObjectAclInput>) -> S3Result<S3Response<PutObjectAclOutput>> {
        acl::put_object_acl(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn put_bucket_policy(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        policy::put_bucket_policy(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        policy::delete_bucket_policy(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn put_public_access_block(
        &self,
        req: S3Request<PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
        policy::put_public_access_block(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn delete_public_access_block(
        &self,
        req: S3Request<DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
        policy::delete_public_access_block(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn put_bucket_cors(&self, req: S3Request<PutBucketCorsInput>) -> S3Result<S3Response<PutBucketCorsOutput>> {
        settings::put_bucket_cors(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        settings::delete_bucket_cors(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn put_bucket_ownership_controls(
        &self,
        req: S3Request<PutBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
        acl::put_bucket_ownership_controls(self, req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn delete_bucket_ownership_controls(
        &self,
        req: S3Request<DeleteBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
        acl::delete_bucket_ownership_controls(self, req).await
    }
}
