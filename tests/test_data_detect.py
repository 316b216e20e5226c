"""MTCNN face detection: verified weights, the numpy cascade, torch vs onnxruntime, accuracy on raw LFW photos."""

from __future__ import annotations

import numpy as np
import pytest

from edgefiq.data.detect import MTCNN_WEIGHTS, DetectOptions, FaceDetector, Faces, area_resize, nms
from edgefiq.errors import DataError, UsageError
from edgefiq.packaged import PackagedFile, packaged_file

RAW_SAMPLE = ["Aaron_Patterson/Aaron_Patterson_0001.jpg", "Ana_Palacio/Ana_Palacio_0007.jpg", "Bill_Gates/Bill_Gates_0017.jpg",
              "Hans_Blix/Hans_Blix_0016.jpg"]  # Ana_Palacio and Hans_Blix hold a second face


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEFIQ_CACHE", str(tmp_path / "cache"))  # hash every file here, no shared memo


@pytest.fixture(scope="module")
def onnx_detector() -> FaceDetector:
    from edgefiq.runtime.detect import onnx_face_detector

    return onnx_face_detector(threads=1)


@pytest.fixture(scope="module")
def torch_detector() -> FaceDetector:
    pytest.importorskip("torch")
    from edgefiq.models.mtcnn import torch_mtcnn_nets

    return FaceDetector(torch_mtcnn_nets())


# ----------------------------------------------------------------------------- weights and failures


def test_weights_are_found_and_hash_verified():
    from edgefiq.utils import sha256_file

    for name, spec in MTCNN_WEIGHTS.items():
        path = packaged_file(spec)
        assert path.name == f"{name}.pt" and sha256_file(path) == spec.sha256


@pytest.mark.parametrize("package,sha,fix", [
    ("facenet_pytorch_missing", None, "pip install --no-deps facenet-pytorch"),
    ("facenet_pytorch", "0" * 64, "pip install --no-deps --force-reinstall facenet-pytorch"),
])
def test_missing_package_or_wrong_hash_is_one_line_error_naming_the_install(package, sha, fix):
    spec = MTCNN_WEIGHTS["pnet"]
    bad = PackagedFile(spec.distribution, package, spec.relpath, sha or spec.sha256)
    with pytest.raises(DataError) as e:
        packaged_file(bad)
    assert "\n" not in str(e.value) and fix in str(e.value)


def test_shipped_onnx_files_are_hash_verified(tmp_path):
    import shutil

    from edgefiq.runtime.detect import MTCNN_ONNX_DIR, onnx_mtcnn_nets

    assert onnx_mtcnn_nets(threads=1).name == "onnxruntime"
    for name in ("pnet", "rnet", "onet"):
        shutil.copy(MTCNN_ONNX_DIR / f"{name}.onnx", tmp_path / f"{name}.onnx")
    (tmp_path / "rnet.onnx").write_bytes((tmp_path / "rnet.onnx").read_bytes()[:-10])
    with pytest.raises(DataError, match="rnet.onnx: sha256 .* reinstall edgefiq"):
        onnx_mtcnn_nets(folder=tmp_path)


def test_torch_nets_load_strict_and_match_onnx():
    pytest.importorskip("torch")
    from edgefiq.models.mtcnn import load_mtcnn_modules, mtcnn_onnx_parity

    mods = load_mtcnn_modules()
    assert sum(p.numel() for p in mods["onet"].parameters()) > 300_000
    assert max(mtcnn_onnx_parity().values()) < 1e-4


# ----------------------------------------------------------------------------- numpy building blocks


@pytest.mark.parametrize("size", [(7, 5), (24, 24), (61, 83), (250, 250)])
def test_area_resize_matches_torch_area_interpolation(rng, size):
    torch = pytest.importorskip("torch")
    img = rng.integers(0, 256, (250, 190, 3)).astype(np.uint8)
    ref = torch.nn.functional.interpolate(torch.from_numpy(img).permute(2, 0, 1)[None].float(), size=size,
                                          mode="area")[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(area_resize(img, size), ref, atol=1e-3)


def test_nms_union_and_min():
    b = np.array([[0, 0, 10, 10], [0, 0, 10, 5], [20, 20, 30, 30]], np.float32)
    s = np.array([0.9, 0.95, 0.8])
    assert nms(b, s, 0.7).tolist() == [1, 0, 2]  # IoU 0.5: both kept, best first
    assert nms(b, s, 0.7, "min").tolist() == [1, 2]  # the small box lies inside the big one
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def test_options_and_rules_are_validated():
    with pytest.raises(UsageError):
        DetectOptions(min_face_size=5)
    with pytest.raises(UsageError):
        DetectOptions(thresholds=(0.6, 0.7))  # type: ignore[arg-type]
    faces = Faces(np.array([[0, 0, 50, 50], [100, 100, 140, 140]], np.float32), np.array([0.99, 0.9], np.float32),
                  np.zeros((2, 5, 2), np.float32))
    assert faces.pick("largest") == 0 and faces.pick("score") == 0
    assert faces.pick("center", (240, 240)) == 1
    with pytest.raises(UsageError):
        faces.pick("biggest")


def test_no_face_in_blank_image_and_bad_input_rejected(onnx_detector):
    assert len(onnx_detector.detect(np.full((120, 160, 3), 128, np.uint8))) == 0
    with pytest.raises(UsageError, match="HxWx3 uint8"):
        onnx_detector.detect(np.zeros((50, 50), np.uint8))


# ----------------------------------------------------------------------------- real photos


def _raw(shared, rels):
    from edgefiq.data.align import read_landmarks_tsv
    from edgefiq.data.images import load_image

    marks = read_landmarks_tsv(shared / "lfw-dev" / "landmarks.tsv")
    return [load_image(shared / "lfw-dev" / "raw_sample" / r) for r in rels], [marks[r] for r in rels]


@pytest.mark.shared_data
def test_detects_the_annotated_face_and_landmarks(shared, onnx_detector):
    from edgefiq.data.align import align_face
    from edgefiq.eval.detect import landmark_nme

    imgs, given = _raw(shared, RAW_SAMPLE)
    errs, mads = [], []
    for img, g in zip(imgs, given):
        faces = onnx_detector.detect(img)
        k = faces.pick("center", img.shape[:2])
        assert k is not None and faces.scores[k] > 0.9
        errs.append(landmark_nme(faces.landmarks[k], g))
        mads.append(np.abs(align_face(img, faces.landmarks[k]).astype(float) - align_face(img, g).astype(float)).mean())
    assert max(errs) < 0.1 and np.mean(errs) <= 0.05  # the targets, on 4 photos
    assert max(mads) < 24 and np.mean(mads) <= 16
    assert len(onnx_detector.detect(imgs[3])) == 2  # Hans Blix and a second face


@pytest.mark.shared_data
def test_deterministic_batch_equals_single_images(shared, onnx_detector):
    imgs, _ = _raw(shared, RAW_SAMPLE[:3])
    batch = onnx_detector.detect_batch(imgs)
    for img, got in zip(imgs, batch):
        one = onnx_detector.detect(img)
        np.testing.assert_array_equal(got.landmarks, one.landmarks)
        np.testing.assert_array_equal(got.scores, one.scores)
    fast = FaceDetector(onnx_detector.nets, DetectOptions(deterministic=False)).detect_batch(imgs)
    for a, b in zip(batch, fast):
        np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-3)


@pytest.mark.shared_data
def test_onnxruntime_and_torch_detectors_agree(shared, onnx_detector, torch_detector):
    from edgefiq.eval.detect import detector_agreement

    imgs, _ = _raw(shared, RAW_SAMPLE[:2])
    ag = detector_agreement(torch_detector, onnx_detector, imgs)
    assert ag["same_count"] == 1.0 and ag["max_landmark_px"] < 1e-2 and ag["max_box_px"] < 1e-2


@pytest.mark.slow
@pytest.mark.shared_data
def test_raw_sample_meets_the_targets(shared, onnx_detector):
    from edgefiq.eval.detect import evaluate_detector

    rep = evaluate_detector(onnx_detector, shared / "lfw-dev" / "raw_sample", shared / "lfw-dev" / "landmarks.tsv")
    assert rep["n_images"] == 200 and rep["detection_rate"] >= 0.99
    assert rep["nme"]["mean"] <= 0.05 and rep["crop_mad"]["mean"] <= 16 / 255


@pytest.mark.slow
@pytest.mark.shared_data
def test_matches_facenet_pytorch_reference(shared, torch_detector):
    """facenet-pytorch's own MTCNN (object arrays under numpy 2; 1-based pixel coordinates)."""
    try:
        from facenet_pytorch import MTCNN
    except Exception as e:  # noqa: BLE001 - its pins may break its import; the weights still work
        pytest.skip(f"facenet_pytorch does not import here: {e}")
    ref = MTCNN(keep_all=True, device="cpu")
    imgs, _ = _raw(shared, RAW_SAMPLE)
    for img in imgs:
        boxes, probs, points = ref.detect(img, landmarks=True)
        got = torch_detector.detect(img)
        order = np.argsort(-np.asarray(probs, np.float64), kind="stable")
        np.testing.assert_allclose(got.boxes + 1, np.asarray(boxes, np.float64)[order], atol=1e-2)
        np.testing.assert_allclose(got.landmarks + 1, np.asarray(points, np.float64)[order], atol=1e-2)


@pytest.mark.shared_data
def test_detect_and_score_a_raw_frame(shared, onnx_detector) -> None:
    """Issue 28: edgefiq.detect_and_score gives each face's box, landmarks and the quality of its aligned crop,
    the same score as aligning with those landmarks by hand; a frame without a face gives an empty list."""
    from PIL import Image

    import edgefiq

    frame = np.asarray(Image.open(shared / "lfw-dev/raw_sample/Aaron_Patterson/Aaron_Patterson_0001.jpg").convert("RGB"))
    faces = edgefiq.detect_and_score(frame)
    assert faces and all(f.box.shape == (4,) and f.landmarks.shape == (5, 2) for f in faces)
    one = edgefiq.detect_and_score(frame, select="largest")
    assert len(one) == 1 and one[0].detection_score > 0.9
    assert len(edgefiq.detect_and_score(frame, select="center")) == 1   # the rule that needs the frame size
    qm = edgefiq.load_model()
    assert one[0].quality == pytest.approx(float(qm.score_arrays([frame], landmarks=[one[0].landmarks])[0]), abs=1e-5)
    assert qm.detect_and_score(frame, select="largest", detector=onnx_detector)[0].quality == pytest.approx(
        one[0].quality, abs=1e-5)
    assert edgefiq.detect_and_score(np.full((240, 320, 3), 127, np.uint8)) == []
