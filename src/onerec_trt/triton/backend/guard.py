"""Triton python model: checks each request's ``history`` before the recommender sees it.

Triton itself rejects a wrong dtype, a wrong rank or length and a batch above max_batch_size;
this model rejects what only the catalogue knows: item ids outside 0..num_items, a row with no
items (all padding), and padding after an item (histories are left-padded). Good requests pass
through unchanged (output ``checked_history``); a bad one gets an error response of its own and
never spoils the other requests batched with it.

Parameters (config.pbtxt): ``num_items``.
"""

import json

import numpy as np

try:  # only inside Triton's python stub
    import triton_python_backend_utils as pb_utils
except ImportError:  # imported by tests for ``check_history``
    pb_utils = None

PAD = 0


def check_history(history: np.ndarray, num_items: int) -> str | None:
    """None if ``history`` [N, S] is a valid request, else the reason, naming the first bad row."""
    if history.ndim != 2 or history.shape[0] == 0:
        return f"history must be [N, S] with N >= 1, got shape {list(history.shape)}"
    bad = (history < PAD) | (history > num_items)
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        return (f"row {row}: item id {int(history[row, col])} is outside the catalogue "
                f"(valid ids 1..{num_items}, {PAD} = padding)")
    items = history != PAD
    empty = ~items.any(axis=1)
    if empty.any():
        return (f"row {int(np.argmax(empty))}: the history is all padding; "
                "send at least one item id")
    # left-padded: once an item appears, no padding may follow it in the row
    late_pad = (np.cumsum(items, axis=1) > 0) & ~items
    if late_pad.any():
        row = int(np.argwhere(late_pad)[0][0])
        return (f"row {row}: padding ({PAD}) after an item id; histories are left-padded "
                "(zeros first, most recent item last)")
    return None


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.num_items = int(params["num_items"])

    def execute(self, requests):
        responses = []
        for request in requests:
            history = pb_utils.get_input_tensor_by_name(request, "history").as_numpy()
            problem = check_history(history, self.num_items)
            if problem is None:
                out = pb_utils.Tensor("checked_history", history)
                responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
            else:
                error = pb_utils.TritonError(problem, pb_utils.TritonError.INVALID_ARG)
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=error))
        return responses
