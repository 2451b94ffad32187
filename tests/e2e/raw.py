"""Raw tritonclient inputs, bypassing the project's client, for tests that must send what the client would refuse."""
import numpy as np
import tritonclient.grpc as grpcclient


def raw_inputs(sk: np.ndarray, cid: np.ndarray, z: np.ndarray, sk_type: str = "UINT8") -> list:
    ins = [grpcclient.InferInput("SKETCH", list(sk.shape), sk_type),
           grpcclient.InferInput("CLASS_ID", list(cid.shape), "INT32"),
           grpcclient.InferInput("NOISE", list(z.shape), "FP32")]
    for i, a in zip(ins, (sk, cid, z)):
        i.set_data_from_numpy(a)
    return ins
