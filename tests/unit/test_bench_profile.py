"""The profile breakdown puts each py-spy sample in the stage its innermost named frame says."""

from benchmarks.profile import breakdown, stage_of


def test_innermost_named_frame_decides() -> None:
    # pandas under the lifted features is the entry point's time, not validation's
    stack = [
        "run_asgi (uvicorn/protocols/http/httptools_impl.py:401)",
        "_validated (service.py:120)",
        "validate_fast (nb2prod_validation.py:300)",
        "features (lifted/features.py:12)",
        "fillna (pandas/core/generic.py:7000)",
    ]
    assert stage_of(stack) == "entry point"
    assert stage_of(stack[:3]) == "validation"
    assert stage_of(stack[:1]) == "HTTP/ASGI"
    assert stage_of(["<module> (x.py:1)"]).startswith("other")


def test_idle_samples_are_left_out_and_counts_add_up() -> None:
    raw = (
        "a (uvicorn/server.py:1);select (selectors.py:468) 40\n"
        "a (uvicorn/server.py:1);predict (sklearn/pipeline.py:600) 7\n"
        "a (uvicorn/server.py:1);predict (sklearn/pipeline.py:600);x (numpy/y.py:3) 3\n"
        "a (uvicorn/server.py:1);send (starlette/responses.py:9) 5\n"
        "not a sample line\n"
    )
    assert breakdown(raw) == {"model": 10, "HTTP/ASGI": 5}
