class RunStore:  # placeholder until store.py lands in this session
    pass
