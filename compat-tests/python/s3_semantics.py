"""Small S3 semantics that real clients and compatibility suites check, the versioning walk
and the ACL walk, through boto3 (run by tests/s3_semantics.rs).

Usage: s3_semantics.py. Endpoint and key come from CAIRN_ENDPOINT and AWS_* variables.
Exits non-zero, with the failing assertion, on any failure.
"""

import os

import boto3
import botocore
from botocore.config import Config


def client():
    return boto3.client(
        "s3",
        endpoint_url=os.environ["CAIRN_ENDPOINT"],
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def error_of(call):
    try:
        call()
    except botocore.exceptions.ClientError as err:
        return err.response["Error"]["Code"], err.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError("expected an error")


def main():
    s3 = client()
    s3.create_bucket(Bucket="sem")

    # x-amz-tagging-count on GET and HEAD when the object has tags, absent when it has none.
    s3.put_object(Bucket="sem", Key="tagged", Body=b"x", Tagging="a=1&b=2")
    s3.put_object(Bucket="sem", Key="plain", Body=b"y")
    assert s3.get_object(Bucket="sem", Key="tagged")["TagCount"] == 2
    head = s3.head_object(Bucket="sem", Key="tagged")["ResponseMetadata"]["HTTPHeaders"]
    assert head.get("x-amz-tagging-count") == "2", head
    assert "TagCount" not in s3.get_object(Bucket="sem", Key="plain")
    plain = s3.head_object(Bucket="sem", Key="plain")["ResponseMetadata"]["HTTPHeaders"]
    assert "x-amz-tagging-count" not in plain, plain

    # max-keys=0: nothing listed, and not truncated (s3-tests' test_bucket_list_maxkeys_zero).
    for listing in (s3.list_objects(Bucket="sem", MaxKeys=0), s3.list_objects_v2(Bucket="sem", MaxKeys=0)):
        assert listing["IsTruncated"] is False, listing
        assert "Contents" not in listing, listing
    versions = s3.list_object_versions(Bucket="sem", MaxKeys=0)
    assert versions["IsTruncated"] is False and "Versions" not in versions, versions

    # An empty delimiter is no delimiter and is not echoed.
    for listing in (
        s3.list_objects(Bucket="sem", Delimiter=""),
        s3.list_objects_v2(Bucket="sem", Delimiter=""),
        s3.list_object_versions(Bucket="sem", Delimiter=""),
    ):
        assert "Delimiter" not in listing, listing
    assert s3.list_objects_v2(Bucket="sem", Delimiter="/")["Delimiter"] == "/"

    # UploadPartCopy: a range past the source is InvalidRange, a malformed one InvalidArgument.
    s3.put_object(Bucket="sem", Key="five", Body=b"01234")
    upload = s3.create_multipart_upload(Bucket="sem", Key="dest")["UploadId"]
    source = {"Bucket": "sem", "Key": "five"}

    def copy(byte_range):
        return lambda: s3.upload_part_copy(
            Bucket="sem", Key="dest", UploadId=upload, PartNumber=1, CopySource=source, CopySourceRange=byte_range
        )

    code, status = error_of(copy("bytes=0-21"))
    assert code == "InvalidRange" and status in (400, 416), (code, status)
    assert error_of(copy("bytes=3-1"))[0] == "InvalidArgument"
    assert error_of(copy("bytes=a-b"))[0] == "InvalidArgument"
    part = s3.upload_part_copy(
        Bucket="sem", Key="dest", UploadId=upload, PartNumber=1, CopySource=source, CopySourceRange="bytes=1-3"
    )
    s3.complete_multipart_upload(
        Bucket="sem",
        Key="dest",
        UploadId=upload,
        MultipartUpload={"Parts": [{"ETag": part["CopyPartResult"]["ETag"], "PartNumber": 1}]},
    )
    assert s3.get_object(Bucket="sem", Key="dest")["Body"].read() == b"123"

    # GetObject partNumber beyond the parts: 400 InvalidPartNumber.
    assert error_of(lambda: s3.get_object(Bucket="sem", Key="dest", PartNumber=2)) == ("InvalidPartNumber", 400)
    assert error_of(lambda: s3.get_object(Bucket="sem", Key="five", PartNumber=2)) == ("InvalidPartNumber", 400)
    assert s3.get_object(Bucket="sem", Key="dest", PartNumber=1)["PartsCount"] == 1

    # GetObjectAttributes with several attributes (boto3 sends them in one header, comma-separated).
    attributes = s3.get_object_attributes(
        Bucket="sem", Key="dest", ObjectAttributes=["ETag", "ObjectSize", "ObjectParts", "StorageClass"]
    )
    assert attributes["ObjectSize"] == 3, attributes
    assert attributes["StorageClass"] == "STANDARD", attributes
    assert attributes["ETag"].strip('"').endswith("-1"), attributes
    parts = attributes["ObjectParts"]
    assert parts["TotalPartsCount"] == 1 and parts["Parts"][0]["Size"] == 3, attributes
    only_size = s3.get_object_attributes(Bucket="sem", Key="five", ObjectAttributes=["ObjectSize"])
    assert only_size["ObjectSize"] == 5 and "ETag" not in only_size, only_size

    versioning(s3)
    acls(s3)
    print("s3 semantics passed")


def versioning(s3):
    """The versioning walk through boto3: versions, delete markers, deletes by id, suspension."""
    s3.create_bucket(Bucket="vers")
    assert "Status" not in s3.get_bucket_versioning(Bucket="vers")
    s3.put_bucket_versioning(Bucket="vers", VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket="vers")["Status"] == "Enabled"
    first = s3.put_object(Bucket="vers", Key="k", Body=b"one")["VersionId"]
    second = s3.put_object(Bucket="vers", Key="k", Body=b"two")["VersionId"]
    assert first != second
    assert s3.get_object(Bucket="vers", Key="k", VersionId=first)["Body"].read() == b"one"
    got = s3.get_object(Bucket="vers", Key="k")
    assert got["VersionId"] == second and got["Body"].read() == b"two", got

    marker = s3.delete_object(Bucket="vers", Key="k")
    assert marker["DeleteMarker"] is True, marker
    assert error_of(lambda: s3.head_object(Bucket="vers", Key="k")) == ("404", 404)
    try:
        s3.get_object(Bucket="vers", Key="k")
        raise AssertionError("a delete marker is current")
    except botocore.exceptions.ClientError as err:
        headers = err.response["ResponseMetadata"]["HTTPHeaders"]
        assert headers.get("x-amz-delete-marker") == "true", headers
    assert error_of(lambda: s3.get_object(Bucket="vers", Key="k", VersionId=marker["VersionId"])) == (
        "MethodNotAllowed",
        405,
    )
    listed = s3.list_object_versions(Bucket="vers")
    assert [v["VersionId"] for v in listed["Versions"]] == [second, first], listed
    assert [m["IsLatest"] for m in listed["DeleteMarkers"]] == [True], listed

    # Deleting the marker by id brings the object back; DeleteObjects deletes versions by id.
    s3.delete_object(Bucket="vers", Key="k", VersionId=marker["VersionId"])
    assert s3.get_object(Bucket="vers", Key="k")["Body"].read() == b"two"
    result = s3.delete_objects(
        Bucket="vers", Delete={"Objects": [{"Key": "k", "VersionId": first}, {"Key": "k", "VersionId": second}]}
    )
    assert len(result["Deleted"]) == 2 and "Errors" not in result, result
    assert "Versions" not in s3.list_object_versions(Bucket="vers")

    # Suspended: the null version, replaced by each write.
    s3.put_bucket_versioning(Bucket="vers", VersioningConfiguration={"Status": "Suspended"})
    assert s3.put_object(Bucket="vers", Key="s", Body=b"a")["VersionId"] == "null"
    assert s3.put_object(Bucket="vers", Key="s", Body=b"b")["VersionId"] == "null"
    versions = s3.list_object_versions(Bucket="vers")["Versions"]
    assert [(v["VersionId"], v["IsLatest"]) for v in versions] == [("null", True)], versions
    assert error_of(
        lambda: s3.put_bucket_versioning(Bucket="vers", VersioningConfiguration={"Status": "Off"})
    ) == ("IllegalVersioningConfigurationException", 400)


ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


def acls(s3):
    """The ACL walk through boto3, with an unsigned boto3 client as the anonymous caller."""
    anonymous = boto3.client(
        "s3",
        endpoint_url=os.environ["CAIRN_ENDPOINT"],
        config=Config(signature_version=botocore.UNSIGNED, s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    # ACLs are disabled on a new bucket, unless it is made with an ownership that enables them.
    assert error_of(lambda: s3.create_bucket(Bucket="pub", ACL="public-read")) == (
        "InvalidBucketAclWithObjectOwnership",
        400,
    )
    s3.create_bucket(Bucket="pub", ACL="public-read", ObjectOwnership="ObjectWriter")
    controls = s3.get_bucket_ownership_controls(Bucket="pub")["OwnershipControls"]
    assert controls["Rules"] == [{"ObjectOwnership": "ObjectWriter"}], controls
    grants = s3.get_bucket_acl(Bucket="pub")["Grants"]
    assert {"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "READ"} in grants, grants

    s3.put_object(Bucket="pub", Key="open", Body=b"for all", ACL="public-read")
    s3.put_object(Bucket="pub", Key="closed", Body=b"for me")
    assert [o["Key"] for o in anonymous.list_objects_v2(Bucket="pub")["Contents"]] == ["closed", "open"]
    assert anonymous.get_object(Bucket="pub", Key="open")["Body"].read() == b"for all"
    assert error_of(lambda: anonymous.get_object(Bucket="pub", Key="closed")) == ("AccessDenied", 403)
    assert error_of(lambda: anonymous.put_object(Bucket="pub", Key="new", Body=b"x")) == ("AccessDenied", 403)

    acl = s3.get_object_acl(Bucket="pub", Key="closed")
    acl["Grants"].append({"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "READ"})
    s3.put_object_acl(Bucket="pub", Key="closed", AccessControlPolicy={"Owner": acl["Owner"], "Grants": acl["Grants"]})
    assert anonymous.get_object(Bucket="pub", Key="closed")["Body"].read() == b"for me"
    s3.put_object_acl(Bucket="pub", Key="open", ACL="private")
    assert error_of(lambda: anonymous.head_object(Bucket="pub", Key="open")) == ("403", 403)

    s3.put_public_access_block(
        Bucket="pub", PublicAccessBlockConfiguration={"IgnorePublicAcls": True, "BlockPublicAcls": True}
    )
    assert error_of(lambda: anonymous.get_object(Bucket="pub", Key="closed")) == ("AccessDenied", 403)
    assert error_of(lambda: s3.put_object_acl(Bucket="pub", Key="open", ACL="public-read")) == ("AccessDenied", 403)
    s3.delete_public_access_block(Bucket="pub")
    assert anonymous.get_object(Bucket="pub", Key="closed")["Body"].read() == b"for me"


if __name__ == "__main__":
    main()
