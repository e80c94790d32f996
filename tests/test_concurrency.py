"""Several processes recording into one SQLite file at once lose nothing."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from tests.fakes.llm_server import FakeLLM
from tests.stored import stored_spans, stored_traces

PROCESSES = 4
CALLS = 1000


def record_calls(url: str, base_url: str, worker: int) -> dict:
    import openai

    import looplab

    looplab.configure(database_url=url)
    client = looplab.wrap_openai(openai.OpenAI(base_url=base_url, api_key="k", max_retries=0))
    for i in range(CALLS):
        with looplab.trace("concurrent", user_id=f"worker-{worker}"):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"n{i}"}])
    assert looplab.flush(timeout=120)
    return looplab.stats()


def test_four_processes_into_one_sqlite_file_lose_nothing(tmp_path: Path, fake_llm: FakeLLM) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"  # fresh: the processes also race to create the schema
    with multiprocessing.get_context("spawn").Pool(PROCESSES) as pool:
        stats = pool.starmap(record_calls, [(url, fake_llm.openai_base_url, w) for w in range(PROCESSES)])
    assert all(s["dropped"] == 0 and s["rejected"] == 0 for s in stats), stats
    traces = stored_traces(url)
    assert len(traces) == PROCESSES * CALLS
    assert len(stored_spans(url)) == 2 * PROCESSES * CALLS
    per_worker = {t["user_id"] for t in traces}
    assert per_worker == {f"worker-{w}" for w in range(PROCESSES)}
    assert all(t["span_count"] == 2 and t["input_tokens"] for t in traces)
