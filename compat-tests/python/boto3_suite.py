"""boto3 with its default checksum behaviour against Cairn (run by tests/boto3.rs).

Usage: boto3_suite.py WORKDIR. Endpoint and key come from CAIRN_ENDPOINT and AWS_* variables.
Exits non-zero, with the failing assertion, on any failure.
"""

import base64
import hashlib
import os
import sys
import urllib.error
import urllib.request
import zlib

import boto3
import botocore
from botocore.config import Config


def client(**config):
    return boto3.client(
        "s3",
        endpoint_url=os.environ["CAIRN_ENDPOINT"],
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, **config),
    )


def error_code(call):
    try:
        call()
    except botocore.exceptions.ClientError as err:
        return err.response["Error"]["Code"]
    raise AssertionError("expected an error")


def main(work):
    s3 = client()
    s3.create_bucket(Bucket="boto")

    # upload_file / download_file of 50 MB: the transfer manager goes multipart.
    data = os.urandom(50 * 1000 * 1000)
    source = os.path.join(work, "fifty.bin")
    with open(source, "wb") as f:
        f.write(data)
    s3.upload_file(source, "boto", "fifty.bin")
    head = s3.head_object(Bucket="boto", Key="fifty.bin")
    assert head["ContentLength"] == len(data), head
    assert "-" in head["ETag"], "multipart upload expected: %s" % head["ETag"]
    back = os.path.join(work, "fifty.back")
    s3.download_file("boto", "fifty.bin", back)
    with open(back, "rb") as f:
        assert f.read() == data, "download differs"

    # put_object with each checksum algorithm; get_object with ChecksumMode.
    body = b"checksummed by boto3 " * 1000
    expected = {
        "CRC32": base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode(),
        "SHA1": base64.b64encode(hashlib.sha1(body).digest()).decode(),
        "SHA256": base64.b64encode(hashlib.sha256(body).digest()).decode(),
    }
    for algorithm in ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"]:
        key = "sum-" + algorithm
        # CRC32C and CRC64NVME need awscrt, which scripts/setup installs.
        put = s3.put_object(Bucket="boto", Key=key, Body=body, ChecksumAlgorithm=algorithm)
        got = s3.get_object(Bucket="boto", Key=key, ChecksumMode="ENABLED")
        assert got["Body"].read() == body
        field = "Checksum" + algorithm
        assert got.get(field) == put.get(field), (algorithm, got.get(field), put.get(field))
        if algorithm in expected:
            assert got[field] == expected[algorithm], (algorithm, got[field])

    # A wrong checksum: BadDigest, nothing stored.
    wrong = base64.b64encode((zlib.crc32(b"other") & 0xFFFFFFFF).to_bytes(4, "big")).decode()
    code = error_code(lambda: s3.put_object(Bucket="boto", Key="bad", Body=body, ChecksumCRC32=wrong))
    assert code == "BadDigest", code
    assert error_code(lambda: s3.head_object(Bucket="boto", Key="bad")) == "404"

    # Presigned URLs (SigV4; boto3 presigns SigV2 unless told): the gateway refuses an expiry
    # over seven days.
    s3 = client(signature_version="s3v4")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "boto", "Key": "sum-SHA256"}, ExpiresIn=300)
    with urllib.request.urlopen(url) as response:
        assert response.read() == body
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "boto", "Key": "sum-SHA256"}, ExpiresIn=604801)
    try:
        urllib.request.urlopen(url)
        raise AssertionError("an expiry over seven days must be refused")
    except urllib.error.HTTPError as err:
        assert err.code in (400, 403), err.code
        assert b"X-Amz-Expires must be less than a week" in err.read()
    print("boto3 suite passed")


if __name__ == "__main__":
    main(sys.argv[1])
