; Inno Setup script: the Windows installer for the one-folder bundle (dist\nemotron-desk\).
;   iscc /DAppVersion=0.1.0 installers\windows\nemotron-desk.iss
; Run from the repository root after installers\nemotron-desk.spec has built dist\nemotron-desk
; (.github/workflows/windows.yml does both). Output: dist\NemotronDesk-<version>-setup.exe.
; Not run on our Linux CI: see docs/installers.md.

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#define AppName "Nemotron Desk"
#define Bundle "..\..\dist\nemotron-desk"

[Setup]
; The AppId identifies the app for upgrades and uninstall: never change it.
AppId={{6B0E4C52-7A0B-4C57-9F43-2D1E3A5C8B71}
AppName={#AppName}
AppVersion={#AppVersion}
AppPublisher=Nemotron Desk developers
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
; Per-user install without administrator rights unless the person chooses all users.
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
OutputDir=..\..\dist
OutputBaseFilename=NemotronDesk-{#AppVersion}-setup
SetupIconFile=..\..\resources\icons\nemotron-desk.ico
UninstallDisplayIcon={app}\Nemotron Desk.exe
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
ChangesEnvironment=yes

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"
Name: "addtopath"; Description: "Add nemotron-desk to the PATH (for the terminal chat, the server and --self-test)"; GroupDescription: "Command line:"; Flags: unchecked

[Files]
Source: "{#Bundle}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\Nemotron Desk.exe"
Name: "{group}\Uninstall {#AppName}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\Nemotron Desk.exe"; Tasks: desktopicon

[Registry]
; The per-user PATH (HKCU) or, for an all-users install, the system PATH (HKLM).
Root: HKA; Subkey: "{code:EnvironmentKey}"; ValueType: expandsz; ValueName: "Path"; \
    ValueData: "{olddata};{app}"; Tasks: addtopath; Check: NotOnPath(ExpandConstant('{app}'))

[Run]
Filename: "{app}\Nemotron Desk.exe"; Description: "Start {#AppName}"; Flags: nowait postinstall skipifsilent

; Conversations, settings and the on-demand torch backend live in the user's data folder
; (%LOCALAPPDATA%\nemotron-desk): an uninstall keeps them, as an upgrade must.

[Code]
function EnvironmentKey(Param: String): String;
begin
  if IsAdminInstallMode then
    Result := 'SYSTEM\CurrentControlSet\Control\Session Manager\Environment'
  else
    Result := 'Environment';
end;

function NotOnPath(Dir: String): Boolean;
var
  Path: String;
  RootKey: Integer;
begin
  if IsAdminInstallMode then RootKey := HKEY_LOCAL_MACHINE else RootKey := HKEY_CURRENT_USER;
  if not RegQueryStringValue(RootKey, EnvironmentKey(''), 'Path', Path) then
    Path := '';
  Result := Pos(';' + Uppercase(Dir) + ';', ';' + Uppercase(Path) + ';') = 0;
end;

procedure RemoveFromPath(Dir: String);
var
  Path: String;
  RootKey: Integer;
  P: Integer;
begin
  if IsAdminInstallMode then RootKey := HKEY_LOCAL_MACHINE else RootKey := HKEY_CURRENT_USER;
  if not RegQueryStringValue(RootKey, EnvironmentKey(''), 'Path', Path) then
    Exit;
  P := Pos(';' + Uppercase(Dir), Uppercase(Path));
  if P > 0 then
  begin
    Delete(Path, P, Length(Dir) + 1);
    RegWriteExpandStringValue(RootKey, EnvironmentKey(''), 'Path', Path);
  end;
end;

procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
begin
  if CurUninstallStep = usPostUninstall then
    RemoveFromPath(ExpandConstant('{app}'));
end;
