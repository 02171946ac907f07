"""tasks_app/platform/keeper.py with real processes: the groups a worker left are killed once it
dies, even one whose start it had not told its keeper yet; a keeper killed on its own is started
again, and one whose worker is gone exits."""
from tasks_app.platform import groups
from tasks_app.platform.keeper import Groups

from ..conftest import wait_until
from ..processes import alive
from .test_groups import start_worker


def test_a_command_started_just_before_its_worker_died_is_killed_found_by_its_output_pipe():
    """The worker dies between the exec and telling the keeper the pid: the keeper knew the pipe."""
    worker = start_worker("""
        guard = keeper.keeper()
        read_end, write_end = os.pipe()
        guard.starting(os.fstat(read_end).st_ino)
        process = subprocess.Popen(["/bin/sh", "-c", "sleep 300 & sleep 300"], stdout=write_end,
                                   start_new_session=True)
        print(process.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    leader = int(worker.stdout.readline())
    worker.wait()

    wait_until(lambda: not groups.group_exists(leader), what="the untold group to be killed")


def test_a_keeper_killed_on_its_own_is_started_again_and_told_of_every_group_still_running():
    worker = start_worker("""
        first = groups.spawn(["sleep", "300"], env=os.environ)
        first_keeper = keeper.keeper().pid
        os.kill(first_keeper, signal.SIGKILL)
        while os.waitid(os.P_PID, first_keeper, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            time.sleep(0.01)
        second = groups.spawn(["sleep", "300"], env=os.environ)
        print(first.pid, second.pid, first_keeper, keeper.keeper().pid, flush=True)
        time.sleep(300)
    """)
    first, second, first_keeper, second_keeper = map(int, worker.stdout.readline().split())
    assert first_keeper != second_keeper and alive(second_keeper) and alive(first) and alive(second)

    worker.kill()
    worker.wait()

    wait_until(lambda: not groups.group_exists(first) and not groups.group_exists(second),
               what="both groups to be killed by the second keeper")
    wait_until(lambda: not alive(second_keeper), what="the keeper to exit")


def test_a_keeper_exits_with_its_worker_and_kills_nothing_reaped():
    worker = start_worker("""
        done = groups.spawn(["true"], env=os.environ)
        done.wait()
        print(keeper.keeper().pid, flush=True)
    """)
    keeper_pid = int(worker.stdout.readline())
    assert worker.wait() == 0
    wait_until(lambda: not alive(keeper_pid), what="the keeper to exit once its worker has")


def test_the_keeper_reads_starts_and_reaps_across_reads():
    kept = Groups()
    for data in (b"? 7\n+ 7 100\n? 8", b"\n+ 8 200\n? 9\nx 9\n- 1", b"00\n"):
        kept.take(data)
    assert (kept.running, kept.starting) == ({200}, set())
