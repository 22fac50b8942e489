# For the compiled copy of mgcscavenge.py (runtime/replay_sources.py): nothing of its own is typed (its
# Scavenger is a mixin of a Python class, its steps a generator); it calls the chunk addressing in C.
from pagealloc.runtime._mpagealloc_64bit_compiled cimport chunk_base, chunk_index, chunk_page_index
