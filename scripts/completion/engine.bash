# bash completion for engine (installed as share/bash-completion/completions/engine).
_engine() {
  local cur prev words cword
  _init_completion 2>/dev/null || { cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}; words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD; }
  local commands="run check resume runs show report ctl inventory api version"
  local cmd="" i
  for ((i = 1; i < cword; i++)); do
    case ${words[i]} in run|check|resume|runs|show|report|ctl|inventory|api|version) cmd=${words[i]}; break ;; esac
  done
  case $prev in
    -i|--inventory) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --state-dir) COMPREPLY=($(compgen -d -- "$cur")); return ;;
    --kubeconfig|--ssh-config|--junit|--html) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --log-format) COMPREPLY=($(compgen -W "text json" -- "$cur")); return ;;
    --log-level) COMPREPLY=($(compgen -W "debug info warn error" -- "$cur")); return ;;
    --context)
      COMPREPLY=($(compgen -W "$(kubectl config get-contexts -o name 2>/dev/null)" -- "$cur")); return ;;
  esac
  if [ -z "$cmd" ]; then
    COMPREPLY=($(compgen -W "$commands --version --help" -- "$cur"))
    return
  fi
  local opts
  case $cmd in
    run) opts="-i --inventory -e --extra --limit --list-hosts --dry-run --yes --log-format --log-level --state-dir --run-id --junit --kubeconfig --context -v --verbose --help" ;;
    check) opts="-i --inventory -e --extra --limit --list-hosts --kubeconfig --context --module --help" ;;
    resume) opts="--force --retry-unknown -e --extra --yes --log-format --log-level --state-dir --junit --kubeconfig --context -v --verbose --help" ;;
    report) opts="--html --junit --state-dir --help" ;;
    api) opts="--json --params --help" ;;
    runs) opts="--state-dir --kubeconfig --context --help" ;;
    show) opts="--state-dir --kubeconfig --context --help" ;;
    ctl) opts="pause continue skip abort --state-dir --kubeconfig --context --help" ;;
    inventory) opts="-i --inventory --limit --list --host --list-hosts --ssh --ssh-config --help" ;;
    *) opts="--help" ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  elif [[ $cmd == run || $cmd == check ]]; then
    COMPREPLY=($(compgen -f -X '!*.lua' -- "$cur") $(compgen -d -- "$cur"))
  elif [[ $cmd == resume || $cmd == show || $cmd == report || $cmd == ctl ]]; then
    COMPREPLY=($(compgen -W "$(engine runs 2>/dev/null | awk 'NR > 1 {print $1}')" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  fi
}
complete -F _engine engine
