"""The inbox: which names are inputs (:mod:`.names`), when a file is complete
(:mod:`.settle`), and the watchdog watcher that feeds both (:mod:`.watcher`)."""
