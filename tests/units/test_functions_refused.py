"""Which errors turn a store from the functions to the scripts: the server refusing FCALL or
FUNCTION itself, never a refusal inside a function (which may have written already). The
messages are those of Redis 6.2, 7.0 and 7.2 / Valkey, as redis-py raises them (without the
error code it parses)."""

from __future__ import annotations

import pytest
import redis.exceptions as rexc

from thread_pool._async.runner import functions_refused

REFUSED = [
    rexc.ResponseError("unknown command `FCALL`, with args beginning with: `tp_1`, "),  # 6.2
    rexc.ResponseError("unknown command 'FCALL', with args beginning with: 'tp_1' "),  # 7
    rexc.ResponseError("unknown command 'FUNCTION', with args beginning with: 'LOAD' "),
    rexc.NoPermissionError("this user has no permissions to run the 'fcall' command"),  # 7.0
    rexc.NoPermissionError("User app has no permissions to run the 'fcall' command"),  # 7.2
    rexc.NoPermissionError("User app has no permissions to run the 'function|load' command"),
]

NOT_REFUSED = [
    rexc.ResponseError("Function not found"),
    # A command the function calls, refused or unknown: it may have written before.
    rexc.ResponseError(
        "The user executing the script can't run this command or subcommand script: "
        "tp_1_acquire, on @user_function:2."
    ),
    rexc.ResponseError(
        "ACL failure in script: NOPERM User app has no permissions to run the 'hincrby' "
        "command script: tp_1_acquire, on @user_function:120."
    ),
    rexc.ResponseError("Unknown Redis command called from script script: tp_1_acquire"),
    rexc.NoPermissionError(
        "this user has no permissions to access one of the keys used as arguments"
    ),
    rexc.NoPermissionError("No permissions to access a key"),
]


@pytest.mark.parametrize("exc", REFUSED, ids=str)
def test_refusals_of_functions_turn_to_scripts(exc: Exception) -> None:
    assert functions_refused(exc)


@pytest.mark.parametrize("exc", NOT_REFUSED, ids=str)
def test_other_errors_do_not(exc: Exception) -> None:
    assert not functions_refused(exc)
