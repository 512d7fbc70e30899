from trainer.cli.main import main

raise SystemExit(main())
