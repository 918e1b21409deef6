"""Fine-tune a tiny BERT on real SNLI pairs; run alone or under torchrun (tests/test_train.py)."""

from __future__ import annotations

import json
import os
import sys

import torch

from bertnli_helpers.data.dataset import SNLIBERTDataset
from bertnli_helpers.data.snli import read_records
from bertnli_helpers.model.bert import BERTClassifier, BertConfig
from bertnli_helpers.model.pretrained import load_pretrained
from bertnli_helpers.train.config import TrainConfig
from bertnli_helpers.train.loop import fine_tune


def main(data_dir: str, out: str) -> None:
    torch.set_num_threads(1)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_layers=1, num_heads=2, ffn_size=64,
                        max_len=64, dropout=0.0, flavour="hf")
    bert, tok = load_pretrained("scratch", config=config, seed=0)
    train = SNLIBERTDataset(read_records(data_dir, "train").sample(192, 0), tok, 64, cache=False)
    dev = SNLIBERTDataset(read_records(data_dir, "dev").sample(64, 0), tok, 64, cache=False)
    torch.manual_seed(0)
    net = BERTClassifier(bert)
    # fp32: half a batch per rank rounds bf16 matmuls differently from the whole batch
    result = fine_tune(net, train, dev, TrainConfig(epochs=2, batch_size=16, lr=1e-3, seed=0,
                                                    device="cpu", max_grad_norm=1.0,
                                                    precision="fp32"))
    if int(os.environ.get("RANK", "0")) == 0:
        torch.save(net.state_dict(), out + ".pt")
        with open(out + ".json", "w") as handle:
            json.dump(result.history, handle)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
