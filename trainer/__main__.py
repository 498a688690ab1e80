from distjudge_trainer.cli import main

raise SystemExit(main())
