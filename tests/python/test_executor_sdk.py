"""Drives opensandbox-executor with the official Python SDK (opensandbox 1.1.1) pointed
straight at the execd endpoint, without a lifecycle server."""

import threading
import time
from datetime import timedelta

import pytest
from opensandbox.config.connection_sync import ConnectionConfigSync
from opensandbox.models.execd import RunCommandOpts
from opensandbox.models.execd_sync import ExecutionHandlersSync
from opensandbox.models.filesystem import (
    ContentReplaceEntry,
    SearchEntry,
    WriteEntry,
)
from opensandbox.models.sandboxes import SandboxEndpoint
from opensandbox.sync.adapters.command_adapter import CommandsAdapterSync
from opensandbox.sync.adapters.filesystem_adapter import FilesystemAdapterSync


@pytest.fixture
def sdk(executor):
    endpoint, scratch = executor
    config = ConnectionConfigSync(request_timeout=timedelta(seconds=30))
    ep = SandboxEndpoint(endpoint=endpoint)
    return CommandsAdapterSync(config, ep), FilesystemAdapterSync(config, ep), scratch


def test_run_foreground(sdk):
    commands, _, _ = sdk
    execution = commands.run("echo hello; echo oops >&2; printf 'a\\n\\nb\\n'")
    assert execution.id and len(execution.id) == 32
    assert [m.text for m in execution.logs.stdout] == ["hello", "a", "\n", "b"]
    assert [m.text for m in execution.logs.stderr] == ["oops"]
    assert execution.error is None
    assert execution.exit_code == 0

    failed = commands.run("nonexistent-cmd-xyz")
    assert failed.error is not None
    assert failed.error.name == "CommandExecError"
    assert failed.exit_code == int(failed.error.value) == 127
    assert "nonexistent-cmd-xyz" in "".join(m.text for m in failed.logs.stderr)


def test_run_options_handlers_and_argv(sdk):
    commands, _, scratch = sdk
    seen = []
    handlers = ExecutionHandlersSync(on_stdout=lambda m: seen.append(m.text))
    execution = commands.run(
        "pwd; echo $GREETING",
        opts=RunCommandOpts(working_directory=scratch, envs={"GREETING": "hi there"}),
        handlers=handlers,
    )
    assert seen == [scratch, "hi there"]
    assert execution.exit_code == 0
    argv = commands.run(["printf", "%s|", "a b", "$HOME"])
    assert [m.text for m in argv.logs.stdout] == ["a b|$HOME|"]


def test_set_env_applies_to_later_commands(sdk):
    commands, _, _ = sdk
    # A single quote selects the double-quoted form (escapes, `$NAME` expanded); other
    # values use the literal single-quoted form.
    commands.set_env("SDK_VAR", 'it\'s "quoted"\tx')
    commands.set_env("PLAIN_VAR", "plain $HOME value")
    out = commands.run('printf "%s\\n" "$SDK_VAR"; echo "$PLAIN_VAR"')
    assert [m.text for m in out.logs.stdout] == ['it\'s "quoted"\tx', "plain $HOME value"]


def test_run_background_status_and_logs(sdk):
    commands, _, _ = sdk
    started = time.time()
    execution = commands.run(
        "echo first; sleep 1; echo second", opts=RunCommandOpts(background=True)
    )
    assert time.time() - started < 5
    assert execution.exit_code is None
    cid = execution.id
    status = commands.get_command_status(cid)
    assert status.running is True
    time.sleep(0.3)
    logs = commands.get_background_command_logs(cid)
    assert logs.content == "first\n"
    cursor = logs.cursor
    deadline = time.time() + 10
    while commands.get_command_status(cid).running:
        assert time.time() < deadline
        time.sleep(0.1)
    more = commands.get_background_command_logs(cid, cursor=cursor)
    assert more.content == "second\n"
    final = commands.get_command_status(cid)
    assert final.exit_code == 0
    assert final.finished_at is not None


def test_timeout_reports_failure(sdk):
    commands, _, _ = sdk
    execution = commands.run("sleep 30", opts=RunCommandOpts(timeout=timedelta(milliseconds=500)))
    assert execution.error is not None
    assert execution.exit_code == -1


def test_interrupt(sdk):
    commands, _, _ = sdk
    ids = []
    result = {}

    def run():
        result["execution"] = commands.run(
            "echo ready; sleep 60",
            handlers=ExecutionHandlersSync(on_init=lambda init: ids.append(init.id)),
        )

    t = threading.Thread(target=run)
    t.start()
    deadline = time.time() + 10
    while not ids:
        assert time.time() < deadline
        time.sleep(0.05)
    time.sleep(0.3)
    commands.interrupt(ids[0])
    t.join(timeout=15)
    assert not t.is_alive()
    execution = result["execution"]
    assert execution.error is not None
    assert execution.exit_code == -1
    assert commands.get_command_status(ids[0]).running is False


def test_sessions_keep_env_and_cwd(sdk):
    commands, _, scratch = sdk
    sid = commands.create_session(working_directory=scratch)
    first = commands.run_in_session(sid, "export SESSION_VAR=kept; mkdir -p inner; cd inner")
    assert first.exit_code == 0
    second = commands.run_in_session(sid, "echo $SESSION_VAR; pwd")
    assert [m.text for m in second.logs.stdout] == ["kept", f"{scratch}/inner"]
    failed = commands.run_in_session(sid, "sh -c 'echo session-fail >&2; exit 7'")
    assert failed.exit_code == 7
    assert failed.error is not None and failed.error.value == "7"
    commands.delete_session(sid)
    with pytest.raises(Exception):
        commands.delete_session(sid)


def test_files_write_read_search_replace_delete(sdk):
    _, files, scratch = sdk
    a, b = f"{scratch}/d/a.txt", f"{scratch}/d/sub/b.bin"
    files.write_files(
        [
            WriteEntry(path=a, data="hello world hello", mode=644),
            WriteEntry(path=b, data=bytes(range(256)) * 1000, mode=600),
        ]
    )
    assert files.read_file(a) == "hello world hello"
    assert files.read_bytes(b) == bytes(range(256)) * 1000
    assert files.read_bytes(b, range_header="bytes=0-3") == bytes([0, 1, 2, 3])
    streamed = b"".join(files.read_bytes_stream(b, chunk_size=4096))
    assert len(streamed) == 256000

    info = files.get_file_info([a, b])
    assert info[a].mode == 644 and info[b].mode == 600
    assert info[a].size == len("hello world hello")

    found = files.search(SearchEntry(path=f"{scratch}/d", pattern="*.txt"))
    assert [f.path for f in found] == [a]

    files.replace_contents([ContentReplaceEntry(path=a, old_content="hello", new_content="bye")])
    assert files.read_file(a) == "bye world bye"

    files.delete_files([a])
    with pytest.raises(Exception):
        files.read_file(a)
    assert files.search(SearchEntry(path=f"{scratch}/d", pattern="*.txt")) == []
