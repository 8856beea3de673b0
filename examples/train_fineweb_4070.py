# The founding example: a 40 M-parameter GPT on a 3.68 B-token FineWeb subset, on one RTX 4070 (nanoGPT config).
# python train.py examples/train_fineweb_4070.py      trainwatch plan examples/train_fineweb_4070.py --gpu "RTX 4070"
out_dir = 'out-fineweb'
dataset = 'fineweb'
eval_interval = 500
eval_iters = 200
log_interval = 10
always_save_checkpoint = True

batch_size = 16
block_size = 1024
gradient_accumulation_steps = 32
max_iters = 20000
lr_decay_iters = max_iters
warmup_iters = 1000

n_layer = 12
n_head = 6
n_embd = 384
dropout = 0.0
learning_rate = 1e-3
min_lr = 1e-4
